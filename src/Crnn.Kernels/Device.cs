using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Crnn.Kernels;

/// <summary>
/// Which code every kernel family runs, decided once when the device opens. <see cref="Gpu"/>: exactly the
/// ILGPU kernels a CUDA or OpenCL device runs (256-thread groups, shared-memory tiles and trees).
/// <see cref="Host"/>: SIMD .NET code on the CPU accelerator's memory where a family has it, else kernels
/// shaped for one thread per core (no barriers). Only the CPU accelerator can run Host.
/// </summary>
public enum KernelPolicy { Host, Gpu }

/// <summary>
/// One accelerator and the launch geometry for it. Kernels are grid-stride loops, so the grid is a property
/// of the device (enough groups to fill it), never of the problem size or a constant in a kernel.
/// </summary>
public sealed class Device : IDisposable
{
    /// <summary>Environment variable naming the device when no option does (cpu, cuda, opencl, with optional :index).</summary>
    public const string EnvironmentVariable = "CRNN_DEVICE";
    /// <summary>Environment variable naming the kernel policy when no option does (auto, host, gpu).</summary>
    public const string KernelsVariable = "CRNN_KERNELS";
    /// <summary>The CPU accelerator's shape under the gpu policy: GPU-sized groups (32-wide warps, 256 threads)
    /// and several of them, so grid-stride-over-groups and partial-sum code runs as on a GPU.</summary>
    public const int GpuLikeWarp = 32, GpuLikeWarps = 8, GpuLikeGroups = 4;

    public Context Context { get; }
    public Accelerator Accelerator { get; }
    /// <summary>Why this accelerator was chosen, for logs.</summary>
    public string Reason { get; }
    /// <summary>Threads per group in grid-stride launches.</summary>
    public int GroupSize { get; }
    /// <summary>Groups per grid-stride launch: enough to fill the device.</summary>
    public int MaxGroups { get; private set; }
    /// <summary>When set, every kernel launch is recorded there (and, for a dry run, not executed).</summary>
    public LaunchPlan? Plan { get; set; }
    public bool IsCpu => Accelerator.AcceleratorType == AcceleratorType.CPU;
    /// <summary>The code every kernel family runs on this device.</summary>
    public KernelPolicy Policy { get; }
    public bool UsesHost => Policy == KernelPolicy.Host;
    public int WarpSize => Accelerator.WarpSize;
    public string Name => Accelerator.Name;

    Device(Context context, Accelerator accelerator, string reason, KernelPolicy policy)
    {
        Context = context;
        Accelerator = accelerator;
        Reason = reason;
        Policy = policy;
        if (IsCpu)
        {
            // Every CPU-accelerator thread is an OS thread: one group per multiprocessor, the whole group.
            GroupSize = accelerator.MaxNumThreadsPerGroup;
            MaxGroups = accelerator.NumMultiprocessors;
        }
        else
        {
            GroupSize = Math.Min(256, accelerator.MaxNumThreadsPerGroup);
            MaxGroups = GpuGroups(accelerator.NumMultiprocessors, accelerator.MaxNumThreadsPerMultiprocessor);
        }
    }

    /// <summary>
    /// Opens the device named by <paramref name="spec"/> ("cpu", "cuda", "opencl", optionally ":index"), or
    /// by <c>CRNN_DEVICE</c> when spec is null or empty, or the best available: CUDA, then OpenCL, then CPU;
    /// with the kernel policy named by <paramref name="kernels"/> ("auto", "host", "gpu"), or by
    /// <c>CRNN_KERNELS</c>. Auto is host on the CPU accelerator and gpu elsewhere; host alone picks the CPU;
    /// gpu on the CPU opens it in the GPU-like shape (<see cref="GpuLikeWarp"/>…), the shape GPU kernels need.
    /// </summary>
    public static Device Open(string? spec = null, string? kernels = null)
    {
        string source = "--device";
        if (string.IsNullOrWhiteSpace(spec))
        {
            spec = Environment.GetEnvironmentVariable(EnvironmentVariable);
            source = EnvironmentVariable;
        }
        var policy = ParseKernels(kernels);
        bool auto = string.IsNullOrWhiteSpace(spec) || spec.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase);
        if (auto && policy == KernelPolicy.Host) (spec, source, auto) = ("cpu", "--kernels host", false);
        var cpuShape = policy == KernelPolicy.Gpu ? GpuLikeCpu : DefaultCpu;
        if (auto) return OpenBest(cpuShape, policy);

        var (kind, index) = ParseSpec(spec!);
        if (kind != "cpu" && policy == KernelPolicy.Host)
            throw new DeviceException($"--kernels host runs only on the CPU accelerator, not on {source}={spec} (use --kernels auto or gpu)");
        var context = CreateContext(kind == "cpu" ? cpuShape : null);
        try
        {
            var devices = DevicesOf(context, kind);
            if (devices.Count == 0)
                throw new DeviceException($"{source} asks for '{spec}' but no {kind} device is available ({Available(context)})");
            if (index >= devices.Count)
                throw new DeviceException($"{source} asks for '{spec}' but there are only {devices.Count} {kind} device(s)");
            var accelerator = devices[index].CreateAccelerator(context);
            return new Device(context, accelerator, $"chosen by {source}={spec}", policy ?? DefaultPolicy(accelerator));
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>A CPU-accelerator device of a given shape; tests use a GPU-like one (32-wide warps, 256-thread groups, several groups).</summary>
    public static Device OpenCpu(int threadsPerWarp, int warpsPerGroup, int groups, KernelPolicy policy)
    {
        var cpu = new CPUDevice(threadsPerWarp, warpsPerGroup, groups);
        var context = CreateContext(cpu);
        return new Device(context, cpu.CreateAccelerator(context),
            $"CPU accelerator {threadsPerWarp}x{warpsPerGroup}x{groups}", policy);
    }

    /// <summary>The default CPU shape: one thread per core (ILGPU's smallest warp is 2), since every thread
    /// of the CPU accelerator is an OS thread and threads beyond the cores cost dearly.</summary>
    public static CPUDevice DefaultCpu => new(2, 1, Math.Max(1, Environment.ProcessorCount / 2));

    static CPUDevice GpuLikeCpu => new(GpuLikeWarp, GpuLikeWarps, GpuLikeGroups);

    static KernelPolicy DefaultPolicy(Accelerator accelerator) =>
        accelerator.AcceleratorType == AcceleratorType.CPU ? KernelPolicy.Host : KernelPolicy.Gpu;

    /// <summary>auto (null), host or gpu, from the option or else <c>CRNN_KERNELS</c>.</summary>
    public static KernelPolicy? ParseKernels(string? kernels)
    {
        string source = "--kernels";
        if (string.IsNullOrWhiteSpace(kernels))
        {
            kernels = Environment.GetEnvironmentVariable(KernelsVariable);
            source = KernelsVariable;
        }
        return kernels?.Trim().ToLowerInvariant() switch
        {
            null or "" or "auto" => null,
            "host" => KernelPolicy.Host,
            "gpu" => KernelPolicy.Gpu,
            _ => throw new DeviceException($"{source} '{kernels}' is not a kernel policy (expected auto, host or gpu)"),
        };
    }

    static Device OpenBest(CPUDevice cpuShape, KernelPolicy? policy)
    {
        var context = CreateContext(cpuShape);
        foreach (var kind in new[] { "cuda", "opencl" })
        {
            foreach (var device in DevicesOf(context, kind))
            {
                try
                {
                    var accelerator = device.CreateAccelerator(context);
                    return new Device(context, accelerator, $"best available ({kind} before cpu)", policy ?? DefaultPolicy(accelerator));
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // A listed device that cannot start (driver mismatch, unsupported OpenCL) is passed over.
                    Console.Error.WriteLine($"note: {kind} device '{device.Name}' could not start: {e.Message.Split('\n')[0]}");
                }
            }
        }
        var cpu = DevicesOf(context, "cpu")[0];
        var cpuAccelerator = cpu.CreateAccelerator(context);
        return new Device(context, cpuAccelerator, "no CUDA or OpenCL device; using the CPU accelerator", policy ?? DefaultPolicy(cpuAccelerator));
    }

    /// <summary>ILGPU's optimization level for the GPU backends (the CPU accelerator runs IL as is): at O2 global
    /// accesses become ld.global/st.global instead of generic ld/st (seen by assembling the PTX).</summary>
    public const OptimizationLevel Optimization = OptimizationLevel.O2;

    static Context CreateContext(CPUDevice? cpu) =>
        Context.Create(builder =>
        {
            builder.CPU(cpu ?? DefaultCpu).Cuda().OpenCL(dev => dev.Capabilities.GenericAddressSpace).EnableAlgorithms().Optimize(Optimization);
        });

    static List<ILGPU.Runtime.Device> DevicesOf(Context context, string kind)
    {
        var type = kind switch
        {
            "cpu" => AcceleratorType.CPU,
            "cuda" => AcceleratorType.Cuda,
            "opencl" => AcceleratorType.OpenCL,
            _ => throw new DeviceException($"unknown device kind '{kind}' (expected cpu, cuda or opencl)"),
        };
        return context.Devices.Where(d => d.AcceleratorType == type).ToList();
    }

    static string Available(Context context) =>
        "available: " + string.Join(", ", context.Devices.Select(d => $"{d.AcceleratorType.ToString().ToLowerInvariant()} '{d.Name}'"));

    internal static (string Kind, int Index) ParseSpec(string spec)
    {
        var parts = spec.Trim().ToLowerInvariant().Split(':');
        string kind = parts[0] == "cl" ? "opencl" : parts[0];
        if (kind is not ("cpu" or "cuda" or "opencl"))
            throw new DeviceException($"unknown device '{spec}' (expected cpu, cuda or opencl, optionally with :index)");
        int index = 0;
        if (parts.Length > 2 || (parts.Length == 2 && (!int.TryParse(parts[1], out index) || index < 0)))
            throw new DeviceException($"bad device index in '{spec}' (expected e.g. cuda:0)");
        return (kind, index);
    }

    /// <summary>Two waves of as many groups as the multiprocessors hold at once.</summary>
    int GpuGroups(int multiprocessors, int threadsPerMultiprocessor) =>
        multiprocessors * Math.Max(1, threadsPerMultiprocessor / GroupSize) * 2;

    /// <summary>Launch geometry of a GPU with <paramref name="multiprocessors"/> SMs instead of this device's
    /// (for a launch plan: e.g. an H100's 132 SMs of 2048 threads, computed on the CPU without running).</summary>
    public void PlanAsGpu(int multiprocessors, int threadsPerMultiprocessor) =>
        MaxGroups = GpuGroups(multiprocessors, threadsPerMultiprocessor);

    /// <summary>Records a launch in <see cref="Plan"/> when there is one: <paramref name="work"/> is the number of
    /// threads' worth of independent work it exposes. Returns whether to run it (false only in a dry run).</summary>
    public bool Launch(string kernel, KernelConfig config, long work, double flops, double bytes,
        [System.Runtime.CompilerServices.CallerFilePath] string family = "")
    {
        if (Plan is not { } plan) return true;
        // Each family lives in the file of its name (Gemm.cs): "Gemm.TiledKernel".
        string name = $"{Path.GetFileNameWithoutExtension(family)}.{kernel}";
        plan.Add(new PlannedLaunch(name, config.GridDim.X, config.GroupDim.X, work, flops, bytes));
        return !plan.DryRun;
    }

    /// <summary><see cref="Launch(string, KernelConfig, long, double, double, string)"/> for a grid-stride loop over
    /// <paramref name="work"/> items, giving its geometry in <paramref name="grid"/>.</summary>
    public bool Launch(string kernel, long work, double flops, double bytes, out KernelConfig grid,
        [System.Runtime.CompilerServices.CallerFilePath] string family = "")
    {
        grid = GridStride(work);
        return Launch(kernel, grid, work, flops, bytes, family);
    }

    /// <summary>Launch geometry for a grid-stride loop over <paramref name="work"/> items.</summary>
    public KernelConfig GridStride(long work)
    {
        long groups = Math.Clamp((work + GroupSize - 1) / GroupSize, 1, MaxGroups);
        return new KernelConfig((int)groups, GroupSize);
    }

    /// <summary>Launch geometry with exactly <paramref name="groups"/> groups of <paramref name="groupSize"/> threads.</summary>
    public KernelConfig Groups(int groups, int groupSize) => new(Math.Max(1, groups), groupSize);

    long _allocatedBytes;

    /// <summary>Bytes of every tensor allocated so far, freed or not (tests check a phase allocates nothing).</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocatedBytes);

    /// <summary>A new device tensor; a failed allocation is a <see cref="DeviceMemoryException"/> naming its size.</summary>
    public Tensor<T> Allocate<T>(params int[] shape) where T : unmanaged
    {
        long count = 1;
        foreach (int d in shape) count *= Math.Max(d, 0);
        long bytes = count * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (count > int.MaxValue)
            throw new DeviceMemoryException($"cannot allocate {Mib(bytes)} MiB on the device: one tensor may hold at most 2^31 elements", bytes);
        try
        {
            var tensor = Tensor<T>.Allocate(this, shape);
            Interlocked.Add(ref _allocatedBytes, bytes);
            return tensor;
        }
        catch (Exception e) when (e is OutOfMemoryException or AcceleratorException)
        {
            // CPU: the host allocation failed; CUDA/OpenCL: the driver's out-of-memory error (kept as the cause).
            throw new DeviceMemoryException($"out of device memory allocating {Mib(bytes)} MiB", bytes, e);
        }
    }

    public Tensor<float> Allocate(params int[] shape) => Allocate<float>(shape);

    static long Mib(long bytes) => (bytes + (1 << 20) - 1) >> 20;

    public Tensor<T> Upload<T>(T[] data, params int[] shape) where T : unmanaged
    {
        var t = Allocate<T>(shape);
        t.CopyFrom(data);
        return t;
    }

    public void Synchronize() => Accelerator.Synchronize();

    /// <summary>Every accelerator ILGPU can see, with its limits (for <c>crnn devices</c>).</summary>
    public static IReadOnlyList<DeviceInfo> List()
    {
        using var context = Context.Create(builder => builder.CPU(DefaultCpu).Cuda().OpenCL());
        return context.Devices.Select(d => new DeviceInfo(
            d.AcceleratorType.ToString().ToLowerInvariant(),
            d.Name,
            // The CPU accelerator reports an unbounded size; the host's memory is the real limit.
            d.AcceleratorType == AcceleratorType.CPU ? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes : d.MemorySize,
            d.NumMultiprocessors,
            d.WarpSize,
            d.MaxNumThreadsPerGroup,
            d.MaxNumThreadsPerMultiprocessor,
            d.MaxSharedMemoryPerGroup,
            d is not CLDevice cl || cl.Capabilities.GenericAddressSpace)).ToList();
    }

    public override string ToString() =>
        $"{Accelerator.AcceleratorType.ToString().ToLowerInvariant()} '{Name}' ({Reason}; {MaxGroups} groups x {GroupSize} threads; {Policy.ToString().ToLowerInvariant()} kernels)";

    readonly Dictionary<string, Tensor<float>> _workspaces = [];

    /// <summary>
    /// Scratch memory named <paramref name="name"/>, shared by every kernel-family instance on this device (their
    /// launches run in stream order, so one product's partial sums are consumed before the next one writes) and
    /// grown to the largest request, so models built one after another do not each hold their own.
    /// </summary>
    public ArrayView<float> Workspace(string name, long length) =>
        Grown(_workspaces, name, (int)Math.Min(length, int.MaxValue), zeroed: false).SubView(0, length);

    readonly Dictionary<string, Tensor<int>> _counters = [];

    /// <summary>
    /// Zeroed integer counters named <paramref name="name"/> for kernels whose groups count their arrivals (the last
    /// group to arrive finishes a reduction). Kernels leave every counter at zero when they end, so one set serves
    /// every launch in stream order.
    /// </summary>
    public ArrayView<int> Counters(string name, int length) => Grown(_counters, name, length, zeroed: true).SubView(0, length);

    /// <summary>The buffer named <paramref name="name"/>, replaced by a larger one when shorter than <paramref name="length"/>
    /// (zeroed through the host when asked: no kernel launch in a step's plan).</summary>
    ArrayView<T> Grown<T>(Dictionary<string, Tensor<T>> buffers, string name, int length, bool zeroed) where T : unmanaged
    {
        if (!buffers.TryGetValue(name, out var buffer) || buffer.Length < length)
        {
            if (buffer != null)
            {
                Synchronize(); // launches already queued may still read the smaller buffer
                buffer.Dispose();
            }
            buffers[name] = buffer = Allocate<T>(length);
            if (zeroed) buffer.Fill(default);
        }
        return buffer.View;
    }

    public void Dispose()
    {
        foreach (var buffer in _workspaces.Values) buffer.Dispose();
        foreach (var buffer in _counters.Values) buffer.Dispose();
        Accelerator.Dispose();
        Context.Dispose();
    }
}

public sealed record DeviceInfo(string Kind, string Name, long MemoryBytes, int Multiprocessors, int WarpSize,
    int MaxThreadsPerGroup, int MaxThreadsPerMultiprocessor, long MaxSharedMemoryPerGroup, bool Usable);

/// <summary>A device could not be opened or used as asked; the message is meant for the user.</summary>
public class DeviceException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A device allocation failed: the message names its size; <see cref="ForBatch"/> adds what the user can change.</summary>
public sealed class DeviceMemoryException(string message, long bytes, Exception? inner = null) : DeviceException(message, inner)
{
    public long Bytes => bytes;

    /// <summary>The same failure, for allocations whose size follows the batch size.</summary>
    public DeviceMemoryException ForBatch(int batch) => new($"{Message} (batch {batch}); try a smaller --batch-size", bytes, this);
}
