using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>The global gradient norm and the clipping scale it gave, read back for logging.</summary>
public readonly record struct GradientNormResult(float Norm, float Scale)
{
    /// <summary>False when some gradient was NaN or infinite (the norm is then NaN or infinite, the scale NaN).</summary>
    public bool IsFinite => float.IsFinite(Norm);
}

/// <summary>
/// Global L2 gradient-norm clipping, all on the device: per-group partial sums of squares (each thread a
/// compensated sequential sum, then a shared-memory tree), a single-group pass over the partials, and
/// scale = min(1, maxNorm/(norm + 1e-6)) left in a device buffer that <see cref="Adam"/> can read, so a
/// training step needs no host round-trip. The partition depends only on the device, so results are
/// bit-identical from run to run on one device. Non-finite gradients give a non-finite norm and a NaN scale.
/// </summary>
public sealed class GradientNorm : IDisposable
{
    /// <summary>Added to the norm before dividing (PyTorch's clip_grad_norm_ convention).</summary>
    public const float Epsilon = 1e-6f;

    readonly Device _device;
    readonly Tensor<float> _partials, _result;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int> _partialSums;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, float> _finish;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int> _scale;

    public GradientNorm(Device device)
    {
        _device = device;
        _partials = device.Allocate(Math.Max(device.MaxGroups, 1));
        _result = device.Upload(new[] { 0f, 1f }, 2);
        var acc = device.Accelerator;
        _partialSums = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int>(PartialSumsKernel);
        _finish = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, float>(FinishKernel);
        _scale = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int>(ScaleKernel);
    }

    /// <summary>One-element device buffer: the norm of the last <see cref="Compute"/>.</summary>
    public ArrayView<float> Norm => _result.View.SubView(0, 1);

    /// <summary>One-element device buffer: the clipping scale of the last <see cref="Compute"/> (1 when under the maximum).</summary>
    public ArrayView<float> Scale => _result.View.SubView(1, 1);

    /// <summary>Computes ‖gradients‖₂ and the scale for <paramref name="maxNorm"/> (infinity: norm only, scale 1)
    /// into <see cref="Norm"/> and <see cref="Scale"/>; the gradients are not changed.</summary>
    public void Compute(ArrayView<float> gradients, float maxNorm = float.PositiveInfinity)
    {
        if (!(maxNorm > 0f)) throw new ArgumentException($"maximum gradient norm must be > 0, got {maxNorm}");
        if (gradients.Length > int.MaxValue) throw new ArgumentException($"gradient buffer of {gradients.Length} elements exceeds the 2^31 element limit");
        int n = (int)gradients.Length;
        var grid = _device.GridStride(n);
        if (_device.Launch(nameof(PartialSumsKernel), grid, n, 2.0 * n, 4.0 * n))
            _partialSums(WithShared(grid), gradients, _partials.View, n);
        var finish = _device.Groups(1, grid.GroupDim.X);
        if (_device.Launch(nameof(FinishKernel), finish, grid.GridDim.X, 2.0 * grid.GridDim.X, 4.0 * grid.GridDim.X))
            _finish(WithShared(finish), _partials.View, _result.View, grid.GridDim.X, maxNorm);
    }

    /// <summary>gradients ·= <see cref="Scale"/> (the scale of the last <see cref="Compute"/>).</summary>
    public void ApplyScale(ArrayView<float> gradients)
    {
        if (gradients.Length > int.MaxValue) throw new ArgumentException($"gradient buffer of {gradients.Length} elements exceeds the 2^31 element limit");
        if (_device.Launch(nameof(ScaleKernel), gradients.Length, gradients.Length, 8.0 * gradients.Length, out var grid))
            _scale(grid, gradients, _result.View, (int)gradients.Length);
    }

    /// <summary>Compute then ApplyScale: clips the gradients in place to norm ≤ maxNorm.</summary>
    public void Clip(ArrayView<float> gradients, float maxNorm)
    {
        Compute(gradients, maxNorm);
        ApplyScale(gradients);
    }

    /// <summary>Reads the norm and scale back to the host (waits for the device).</summary>
    public GradientNormResult Read()
    {
        var host = _result.ToHost();
        return new GradientNormResult(host[0], host[1]);
    }

    static KernelConfig WithShared(KernelConfig c) =>
        new(c.GridDim.X, c.GroupDim.X, SharedMemoryConfig.RequestDynamic<float>(c.GroupDim.X));

    /// <summary>partials[group] = Σ g² over the group's grid-stride share of the elements.</summary>
    static void PartialSumsKernel(ArrayView<float> g, ArrayView<float> partials, int n)
    {
        var shared = SharedMemory.GetDynamic<float>();
        int tid = Group.IdxX, threads = Group.DimX, group = Grid.IdxX;
        int stride = Grid.DimX * threads;
        float sum = 0f, lost = 0f;
        for (int i = group * threads + tid; i < n; i += stride)
        {
            float x = g[i];
            AddCompensated(ref sum, ref lost, x * x);
        }
        shared[tid] = sum;
        float total = TreeSum(shared, tid, threads);
        if (tid == 0) partials[group] = total;
    }

    /// <summary>One group: sums the partials, then writes [norm, scale].</summary>
    static void FinishKernel(ArrayView<float> partials, ArrayView<float> result, int count, float maxNorm)
    {
        var shared = SharedMemory.GetDynamic<float>();
        int tid = Group.IdxX, threads = Group.DimX;
        float sum = 0f, lost = 0f;
        for (int i = tid; i < count; i += threads) AddCompensated(ref sum, ref lost, partials[i]);
        shared[tid] = sum;
        float total = TreeSum(shared, tid, threads);
        if (tid == 0)
        {
            float norm = XMath.Sqrt(total);
            result[0] = norm;
            // Explicit NaN: min() of NaN differs between .NET (NaN) and PTX (the other operand).
            result[1] = XMath.IsFinite(norm) ? XMath.Min(1f, maxNorm / (norm + Epsilon)) : float.NaN;
        }
    }

    static void ScaleKernel(ArrayView<float> g, ArrayView<float> result, int n)
    {
        float k = result[1];
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride) g[i] *= k;
    }

    /// <summary>Kahan summation: a long per-thread sum keeps float32 accuracy (1.45 M squares on 2 threads).</summary>
    static void AddCompensated(ref float sum, ref float lost, float x)
    {
        float y = x - lost;
        float t = sum + y;
        lost = (t - sum) - y;
        sum = t;
    }

    /// <summary>Fixed-order tree over shared[0..threads) (any group size): pairs at distance 1, 2, 4…; returns the total.</summary>
    static float TreeSum(ArrayView<float> shared, int tid, int threads)
    {
        Group.Barrier();
        for (int width = 1; width < threads; width *= 2)
        {
            if (tid % (2 * width) == 0 && tid + width < threads) shared[tid] += shared[tid + width];
            Group.Barrier();
        }
        return shared[0];
    }

    public void Dispose()
    {
        _partials.Dispose();
        _result.Dispose();
    }
}
