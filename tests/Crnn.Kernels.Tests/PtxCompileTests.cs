using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>
/// The CPU accelerator runs kernels as plain .NET code, so it accepts constructs no GPU backend can compile
/// (exceptions, allocations, unsupported library calls). Compiling every kernel to PTX here, with no GPU,
/// catches those before a CUDA user does.
/// </summary>
public class PtxCompileTests
{
    /// <summary>Every kernel entry point: the static methods named *Kernel in Crnn.Kernels.</summary>
    public static TheoryData<string> KernelNames()
    {
        var data = new TheoryData<string>();
        foreach (var m in AllKernels()) data.Add($"{m.DeclaringType!.Name}.{m.Name}");
        return data;
    }

    static IEnumerable<MethodInfo> AllKernels() =>
        typeof(Device).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.DeclaredOnly))
            .Where(m => m.Name.EndsWith("Kernel", StringComparison.Ordinal) && m.ReturnType == typeof(void));

    /// <summary>Compiles for SM_75. With CRNN_PTX_DIR set (tools/ptx-check.sh) it also writes the PTX for
    /// sm_80 and sm_90 there as <c>Type.Method.sm_XX.ptx</c>, for ptxas to assemble. ISA 8.7 is what
    /// ILGPU picks under a CUDA 12.8 driver; the instruction set changes only the <c>.version</c> line.</summary>
    [Theory]
    [MemberData(nameof(KernelNames))]
    public void CompilesToPtx(string name)
    {
        var method = AllKernels().Single(m => $"{m.DeclaringType!.Name}.{m.Name}" == name);
        using var context = Context.Create(b => b.Cuda().EnableAlgorithms().Optimize(Device.Optimization));
        Assert.Contains(".entry", Ptx(context, method, CudaArchitecture.SM_75, CudaInstructionSet.ISA_75));

        var dir = Environment.GetEnvironmentVariable("CRNN_PTX_DIR");
        if (string.IsNullOrEmpty(dir)) return;
        Directory.CreateDirectory(dir);
        foreach (var (arch, sm) in new[] { (CudaArchitecture.SM_80, "sm_80"), (CudaArchitecture.SM_90, "sm_90") })
            File.WriteAllText(Path.Combine(dir, $"{name}.{sm}.ptx"), Ptx(context, method, arch, CudaInstructionSet.ISA_87));
    }

    static string Ptx(Context context, MethodInfo method, CudaArchitecture arch, CudaInstructionSet isa)
    {
        using var backend = new PTXBackend(context, arch, isa, null!);
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
        return ((PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty)).PTXAssembly;
    }

    [Fact]
    public void FindsTheKernels() => Assert.True(AllKernels().Count() >= 5);
}
