using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>The global gradient norm, the clipping scale it gave and the sum of the per-sample losses given to
/// <see cref="GradientNorm.Compute"/> (0 when none), read back together: a training step's one read.</summary>
public readonly record struct GradientNormResult(float Norm, float Scale, float LossSum)
{
    /// <summary>False when some gradient or loss was NaN or infinite (the scale is then NaN): the step is to be skipped.</summary>
    public bool IsFinite => float.IsFinite(Norm) && float.IsFinite(LossSum);
}

/// <summary>
/// Global L2 gradient-norm clipping, all on the device: per-group partial sums of squares (each thread a
/// compensated sequential sum, then a shared-memory tree), a single-group pass over the partials, and
/// scale = min(1, maxNorm/(norm + 1e-6)) left in a device buffer that <see cref="Adam"/> can read, so a
/// training step needs no host round-trip. The single-group pass also sums the step's per-sample losses the
/// same way, so one <see cref="Read"/> brings back loss, norm, scale and whether all were finite. The partition
/// depends only on the device, so results are bit-identical from run to run on one device. Non-finite
/// gradients or losses give a NaN scale (Adam then skips the step).
/// </summary>
public sealed class GradientNorm : IDisposable
{
    /// <summary>Added to the norm before dividing (PyTorch's clip_grad_norm_ convention).</summary>
    public const float Epsilon = 1e-6f;

    readonly Device _device;
    readonly Tensor<float> _partials, _result;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int> _partialSums;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, float, ArrayView<float>, int> _finish;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int> _scale;

    public GradientNorm(Device device)
    {
        _device = device;
        _partials = device.Allocate(Math.Max(device.MaxGroups, 1));
        _result = device.Upload(new[] { 0f, 1f, 0f }, 3); // [norm, scale, loss sum]
        var acc = device.Accelerator;
        _partialSums = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int>(PartialSumsKernel);
        _finish = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, float, ArrayView<float>, int>(FinishKernel);
        _scale = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int>(ScaleKernel);
    }

    /// <summary>One-element device buffer: the norm of the last <see cref="Compute"/>.</summary>
    public ArrayView<float> Norm => _result.View.SubView(0, 1);

    /// <summary>One-element device buffer: the clipping scale of the last <see cref="Compute"/> (1 when under the maximum).</summary>
    public ArrayView<float> Scale => _result.View.SubView(1, 1);

    /// <summary>Computes ‖gradients‖₂ and the scale for <paramref name="maxNorm"/> (infinity: norm only, scale 1)
    /// into <see cref="Norm"/> and <see cref="Scale"/>, and the sum of <paramref name="losses"/> (none: 0) for
    /// <see cref="Read"/>; the gradients are not changed.</summary>
    public void Compute(ArrayView<float> gradients, float maxNorm = float.PositiveInfinity, ArrayView<float> losses = default)
    {
        if (!(maxNorm > 0f)) throw new ArgumentException($"maximum gradient norm must be > 0, got {maxNorm}");
        if (gradients.Length > int.MaxValue) throw new ArgumentException($"gradient buffer of {gradients.Length} elements exceeds the 2^31 element limit");
        if (losses.Length > int.MaxValue) throw new ArgumentException($"loss buffer of {losses.Length} elements exceeds the 2^31 element limit");
        int n = (int)gradients.Length, lossCount = (int)losses.Length;
        var grid = _device.GridStride(n);
        if (_device.Launch(nameof(PartialSumsKernel), grid, n, 2.0 * n, 4.0 * n))
            _partialSums(WithShared(grid), gradients, _partials.View, n);
        var finish = _device.Groups(1, grid.GroupDim.X);
        int summed = grid.GridDim.X + lossCount;
        // No losses: any valid buffer stands in (a default view is no buffer a GPU kernel can take), read 0 times.
        var lossView = lossCount > 0 ? losses : _partials.View;
        if (_device.Launch(nameof(FinishKernel), finish, summed, 2.0 * summed, 4.0 * summed))
            _finish(WithShared(finish, rows: 2), _partials.View, _result.View, grid.GridDim.X, maxNorm, lossView, lossCount);
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

    /// <summary>Reads the norm, scale and loss sum back to the host in one transfer (waits for the device).</summary>
    public GradientNormResult Read()
    {
        var host = _result.ToHost();
        return new GradientNormResult(host[0], host[1], host[2]);
    }

    /// <summary>The launch with <paramref name="rows"/> floats of shared memory per thread.</summary>
    static KernelConfig WithShared(KernelConfig c, int rows = 1) =>
        new(c.GridDim.X, c.GroupDim.X, SharedMemoryConfig.RequestDynamic<float>(rows * c.GroupDim.X));

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
        TreeSum(shared, tid, threads, rows: 1);
        if (tid == 0) partials[group] = shared[0];
    }

    /// <summary>One group: sums the partials and, in the same tree, the losses; then writes [norm, scale, loss sum].</summary>
    static void FinishKernel(ArrayView<float> partials, ArrayView<float> result, int count, float maxNorm,
        ArrayView<float> losses, int lossCount)
    {
        var shared = SharedMemory.GetDynamic<float>();
        int tid = Group.IdxX, threads = Group.DimX;
        float sum = 0f, lost = 0f;
        for (int i = tid; i < count; i += threads) AddCompensated(ref sum, ref lost, partials[i]);
        float lossSum = 0f, lossLost = 0f;
        for (int i = tid; i < lossCount; i += threads) AddCompensated(ref lossSum, ref lossLost, losses[i]);
        shared[tid] = sum;
        shared[threads + tid] = lossSum;
        TreeSum(shared, tid, threads, rows: 2);
        if (tid == 0)
        {
            float norm = XMath.Sqrt(shared[0]), loss = shared[threads];
            result[0] = norm;
            // Explicit NaN: min() of NaN differs between .NET (NaN) and PTX (the other operand).
            result[1] = XMath.IsFinite(norm) && XMath.IsFinite(loss) ? XMath.Min(1f, maxNorm / (norm + Epsilon)) : float.NaN;
            result[2] = loss;
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

    /// <summary>Fixed-order tree over each of <paramref name="rows"/> rows of shared memory, row r at
    /// [r·threads, (r+1)·threads) (any group size): pairs at distance 1, 2, 4…; row r's total ends in its first
    /// element. Rows share the barriers.</summary>
    static void TreeSum(ArrayView<float> shared, int tid, int threads, int rows)
    {
        Group.Barrier();
        for (int width = 1; width < threads; width *= 2)
        {
            if (tid % (2 * width) == 0 && tid + width < threads)
                for (int row = 0; row < rows * threads; row += threads) shared[row + tid] += shared[row + tid + width];
            Group.Barrier();
        }
    }

    public void Dispose()
    {
        _partials.Dispose();
        _result.Dispose();
    }
}
