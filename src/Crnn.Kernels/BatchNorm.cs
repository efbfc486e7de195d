using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// Batch normalization over NCHW activations, per channel over (batch, H, W), eps 1e-5. Training mode
/// normalizes with the batch statistics (two-pass mean and biased variance) and saves mean and 1/std for
/// the backward. (Inference applies the running statistics in the convolutions' epilogues: see
/// <see cref="ChannelNorm"/>.)
/// </summary>
/// <remarks>
/// Per-channel sums are deterministic. gpu policy: one group per channel, each thread sums a strided share
/// of the channel in a fixed order, then a shared-memory tree sized by the group combines the partial sums.
/// host policy: one task sums the channel in fixed 8-lane SIMD blocks (<see cref="HostBatchNorm"/>). Either
/// way the order depends only on the group size (or the shape), so one device gives bit-identical results.
/// No float atomics.
/// </remarks>
public sealed class BatchNorm
{
    public const float Epsilon = 1e-5f;
    /// <summary>The largest group the shared-memory reduction holds (CUDA's limit).</summary>
    const int MaxGroupSize = 1024;

    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape, float> _forwardGrouped;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape> _backwardGrouped;

    public BatchNorm(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _forwardGrouped = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape, float>(ForwardTrainingGroupedKernel);
        _backwardGrouped = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape>(BackwardGroupedKernel);
    }

    /// <summary>
    /// y = gamma·(x − mean)·invStd + beta with the batch's mean and biased variance per channel; writes
    /// saveMean and saveInvStd (1/√(var + eps)) for <see cref="Backward"/> and updates the running
    /// statistics in Paddle's convention: running ← momentum·running + (1 − momentum)·batch. Like Paddle,
    /// the running variance takes the biased batch variance (PyTorch would use the unbiased one).
    /// x and y are [batch, channels, spatial] (spatial = H·W); y may be x.
    /// Fused epilogue (one launch instead of three under the gpu policy): with <paramref name="residual"/>, y takes
    /// + residual (the shortcut of a residual unit); with <paramref name="act"/>, <paramref name="activated"/> = act(y)
    /// (y keeps the pre-activation values the backward needs).
    /// </summary>
    public void ForwardTraining(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
        ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> runningMean, ArrayView<float> runningVar,
        int batch, int channels, int spatial, float momentum = 0.9f,
        Activation act = Activation.None, ArrayView<float> activated = default, ArrayView<float> residual = default)
    {
        var s = Check(batch, channels, spatial, ("x", x), ("y", y));
        s.Act = (int)act;
        s.Residual = residual.IsValid ? 1 : 0;
        if (act != Activation.None) Check(batch, channels, spatial, ("activated", activated));
        if (residual.IsValid) Check(batch, channels, spatial, ("residual", residual));
        CheckChannels(channels, ("gamma", gamma), ("beta", beta), ("saveMean", saveMean), ("saveInvStd", saveInvStd),
            ("runningMean", runningMean), ("runningVar", runningVar));
        if (!(momentum >= 0f && momentum <= 1f)) throw new ArgumentException($"momentum {momentum} is outside [0, 1]");
        RequireStatistics(batch, spatial);
        if (channels == 0) return;
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "batch norm");
            unsafe
            {
                HostBatchNorm.ForwardTraining(HostMemory.Pointer(x), HostMemory.Pointer(gamma), HostMemory.Pointer(beta), HostMemory.Pointer(y),
                    HostMemory.Pointer(saveMean), HostMemory.Pointer(saveInvStd), HostMemory.Pointer(runningMean), HostMemory.Pointer(runningVar), s, momentum);
                int n = (int)x.Length;
                if (residual.IsValid) HostElementwise.Add(HostMemory.Pointer(y), HostMemory.Pointer(residual), HostMemory.Pointer(y), n);
                if (act != Activation.None) HostElementwise.Forward(s.Act, HostMemory.Pointer(y), HostMemory.Pointer(activated), n);
            }
        }
        else
        {
            var grid = PerGroup(channels);
            double extra = (residual.IsValid ? 8.0 : 0) + (act != Activation.None ? 8.0 : 0);
            if (_device.Launch(nameof(ForwardTrainingGroupedKernel), grid, (long)channels * _device.GroupSize, 8.0 * x.Length, (16.0 + extra) * x.Length))
                _forwardGrouped(grid, x, gamma, beta, y, saveMean, saveInvStd, runningMean, runningVar,
                    act != Activation.None ? activated : y, residual.IsValid ? residual : y, s, momentum);
        }
    }

    /// <summary>
    /// Gradients of the training-mode forward: dbeta = Σ dy, dgamma = Σ dy·x̂ and
    /// dx = gamma·invStd·(dy − dbeta/n − x̂·dgamma/n) with x̂ = (x − mean)·invStd and n = batch·spatial.
    /// Overwrites dx, dgamma and dbeta; dx may be dy. With <paramref name="act"/>, dy is the gradient of act(y) and
    /// <paramref name="normalized"/> holds y (the forward's pre-activation output): the activation's backward is fused in.
    /// </summary>
    public void Backward(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> gamma, ArrayView<float> saveMean,
        ArrayView<float> saveInvStd, ArrayView<float> dx, ArrayView<float> dgamma, ArrayView<float> dbeta,
        int batch, int channels, int spatial, Activation act = Activation.None, ArrayView<float> normalized = default)
    {
        var s = Check(batch, channels, spatial, ("x", x), ("dy", dy), ("dx", dx));
        s.Act = (int)act;
        if (act != Activation.None) Check(batch, channels, spatial, ("normalized", normalized));
        CheckChannels(channels, ("gamma", gamma), ("saveMean", saveMean), ("saveInvStd", saveInvStd), ("dgamma", dgamma), ("dbeta", dbeta));
        RequireStatistics(batch, spatial);
        if (channels == 0) return;
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "batch norm");
            unsafe
            {
                var gradient = HostMemory.Pointer(dy);
                if (act != Activation.None)
                {
                    HostElementwise.Backward(s.Act, HostMemory.Pointer(normalized), gradient, HostMemory.Pointer(dx), (int)x.Length);
                    gradient = HostMemory.Pointer(dx);
                }
                HostBatchNorm.Backward(HostMemory.Pointer(x), gradient, HostMemory.Pointer(gamma), HostMemory.Pointer(saveMean),
                    HostMemory.Pointer(saveInvStd), HostMemory.Pointer(dx), HostMemory.Pointer(dgamma), HostMemory.Pointer(dbeta), s);
            }
        }
        else
        {
            var grid = PerGroup(channels);
            double extra = act != Activation.None ? 8.0 : 0;
            if (_device.Launch(nameof(BackwardGroupedKernel), grid, (long)channels * _device.GroupSize, 10.0 * x.Length, (20.0 + extra) * x.Length))
                _backwardGrouped(grid, x, dy, act != Activation.None ? normalized : dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta, s);
        }
    }

    /// <summary>One group per channel (groups loop over channels when there are more channels than groups).</summary>
    KernelConfig PerGroup(int channels) =>
        _device.Groups(Math.Min(channels, _device.MaxGroups), Math.Min(_device.GroupSize, MaxGroupSize));

    static BatchNormShape Check(int batch, int channels, int spatial, params (string Name, ArrayView<float> View)[] tensors)
    {
        if (batch < 0 || channels < 0 || spatial < 0) throw new ArgumentException($"negative batch-norm shape [{batch},{channels},{spatial}]");
        long n = (long)batch * channels * spatial;
        if (n > int.MaxValue) throw new ArgumentException($"batch-norm tensor of {n} elements exceeds the 2^31 element limit");
        foreach (var (name, view) in tensors)
            if (view.Length != n) throw new ArgumentException($"{name} has {view.Length} elements, expected [{batch},{channels},{spatial}] = {n}");
        return new BatchNormShape { Batch = batch, Channels = channels, Spatial = spatial };
    }

    /// <summary>Batch statistics need at least one value per channel.</summary>
    static void RequireStatistics(int batch, int spatial)
    {
        if (batch == 0 || spatial == 0) throw new ArgumentException($"batch statistics need values: batch {batch} x spatial {spatial} is empty");
    }

    static void CheckChannels(int channels, params (string Name, ArrayView<float> View)[] vectors)
    {
        foreach (var (name, view) in vectors)
            if (view.Length != channels) throw new ArgumentException($"{name} has {view.Length} elements, expected {channels} (one per channel)");
    }

    /// <summary>GPU shape: each group normalizes whole channels, its threads sharing every reduction.</summary>
    static void ForwardTrainingGroupedKernel(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
        ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> runningMean, ArrayView<float> runningVar,
        ArrayView<float> activated, ArrayView<float> residual, BatchNormShape s, float momentum)
    {
        var partial = SharedMemory.Allocate<float>(2 * MaxGroupSize);
        int tid = Group.IdxX, threads = Group.DimX, groups = Grid.DimX;
        for (int c = Grid.IdxX; c < s.Channels; c += groups)
            ForwardTrainingChannel(x, gamma, beta, y, saveMean, saveInvStd, runningMean, runningVar, activated, residual, s, momentum, c, tid, threads, partial);
    }

    /// <summary>Channel c by <paramref name="threads"/> cooperating threads of one group (1: a thread alone,
    /// no shared memory or barriers); tid is this thread's place among them.</summary>
    static void ForwardTrainingChannel(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
        ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> runningMean, ArrayView<float> runningVar,
        ArrayView<float> activated, ArrayView<float> residual, BatchNormShape s, float momentum, int c, int tid, int threads, ArrayView<float> partial)
    {
        int n = s.Batch * s.Spatial;
        float inverseCount = 1f / n;
        float sum = 0f;
        for (var e = new ChannelWalk(s, c, tid, threads); e.J < n; e.Next()) sum += x[e.Index];
        float mean = SharedTreeSum.Sum(partial, 0, sum, tid, threads) * inverseCount;
        // Second pass over centred values: no cancellation when the mean is large against the spread.
        float squares = 0f;
        for (var e = new ChannelWalk(s, c, tid, threads); e.J < n; e.Next())
        {
            float d = x[e.Index] - mean;
            squares += d * d;
        }
        float variance = SharedTreeSum.Sum(partial, MaxGroupSize, squares, tid, threads) * inverseCount;
        float invStd = 1f / XMath.Sqrt(variance + Epsilon);
        float scale = gamma[c] * invStd, shift = beta[c];
        for (var e = new ChannelWalk(s, c, tid, threads); e.J < n; e.Next())
        {
            int i = e.Index;
            float v = (x[i] - mean) * scale + shift;
            if (s.Residual != 0) v += residual[i];
            y[i] = v;
            if (s.Act != 0) activated[i] = Activations.Apply(s.Act, v);
        }
        if (tid == 0)
        {
            saveMean[c] = mean;
            saveInvStd[c] = invStd;
            runningMean[c] = momentum * runningMean[c] + (1f - momentum) * mean;
            runningVar[c] = momentum * runningVar[c] + (1f - momentum) * variance;
        }
    }

    /// <summary>GPU shape: each group differentiates whole channels, its threads sharing the two sums.</summary>
    static void BackwardGroupedKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> normalized, ArrayView<float> gamma,
        ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> dx, ArrayView<float> dgamma, ArrayView<float> dbeta, BatchNormShape s)
    {
        var partial = SharedMemory.Allocate<float>(2 * MaxGroupSize);
        int tid = Group.IdxX, threads = Group.DimX, groups = Grid.DimX;
        for (int c = Grid.IdxX; c < s.Channels; c += groups)
            BackwardChannel(x, dy, normalized, gamma, saveMean, saveInvStd, dx, dgamma, dbeta, s, c, tid, threads, partial);
    }

    /// <summary>The gradient reaching BatchNorm's output: dy through the fused activation, if any.</summary>
    static float OutputGradient(ArrayView<float> dy, ArrayView<float> normalized, BatchNormShape s, int i) =>
        s.Act != 0 ? dy[i] * Activations.Derivative(s.Act, normalized[i]) : dy[i];

    /// <summary>Channel c's gradients by <paramref name="threads"/> cooperating threads (see ForwardTrainingChannel).</summary>
    static void BackwardChannel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> normalized, ArrayView<float> gamma,
        ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> dx, ArrayView<float> dgamma, ArrayView<float> dbeta,
        BatchNormShape s, int c, int tid, int threads, ArrayView<float> partial)
    {
        int n = s.Batch * s.Spatial;
        float inverseCount = 1f / n;
        float mean = saveMean[c], invStd = saveInvStd[c];
        float sumDy = 0f, sumDyCentred = 0f;
        for (var e = new ChannelWalk(s, c, tid, threads); e.J < n; e.Next())
        {
            int i = e.Index;
            float g = OutputGradient(dy, normalized, s, i);
            sumDy += g;
            sumDyCentred += g * (x[i] - mean);
        }
        var (dyTotal, dyCentredTotal) = SharedTreeSum.Sum2(partial, MaxGroupSize, sumDy, sumDyCentred, tid, threads);
        float dGamma = dyCentredTotal * invStd;
        float scale = gamma[c] * invStd, meanDy = dyTotal * inverseCount, meanDyXhat = dGamma * inverseCount;
        // Every thread has read the sums, so dx may overwrite dy in place below.
        for (var e = new ChannelWalk(s, c, tid, threads); e.J < n; e.Next())
        {
            int i = e.Index;
            float xhat = (x[i] - mean) * invStd;
            dx[i] = scale * (OutputGradient(dy, normalized, s, i) - meanDy - xhat * meanDyXhat);
        }
        if (tid == 0)
        {
            dgamma[c] = dGamma;
            dbeta[c] = dyTotal;
        }
    }
}

/// <summary>
/// Walks the elements of channel c that one thread owns: every threads-th element of the channel's
/// (batch, spatial) values, as flat NCHW indices, without a division per element.
/// </summary>
internal struct ChannelWalk
{
    /// <summary>Position among the channel's batch·spatial values, and its flat index.</summary>
    public int J, Index;
    int _spatialPos;
    readonly int _step, _spatial, _spatialStep, _jump, _wrap;

    public ChannelWalk(BatchNormShape s, int c, int first, int step)
    {
        int plane = s.Channels * s.Spatial;
        J = first;
        _spatialPos = first % s.Spatial;
        Index = first / s.Spatial * plane + c * s.Spatial + _spatialPos;
        _step = step;
        _spatial = s.Spatial;
        _spatialStep = step % s.Spatial;
        _jump = step / s.Spatial * plane + _spatialStep;
        _wrap = plane - s.Spatial; // from past the end of one image's channel to the next image's
    }

    public void Next()
    {
        J += _step;
        Index += _jump;
        _spatialPos += _spatialStep;
        if (_spatialPos >= _spatial)
        {
            _spatialPos -= _spatial;
            Index += _wrap;
        }
    }
}

/// <summary>The integer sizes of a batch-norm launch: x is [Batch, Channels, Spatial].</summary>
public struct BatchNormShape
{
    public int Batch, Channels, Spatial;
    /// <summary>The fused epilogue: the activation (<see cref="Activation"/> as int, 0 none) and whether a residual is added.</summary>
    public int Act, Residual;
}

/// <summary>
/// Fixed-order sums across one group through shared memory, for kernels where a group owns a reduction.
/// Works for any group size (2-thread CPU groups, 256-thread GPU groups, non-powers of two); with one
/// thread the sum is the value itself and partial is never touched.
/// </summary>
internal static class SharedTreeSum
{
    /// <summary>
    /// The sum of <paramref name="value"/> over the group's threads, returned to every thread. Uses
    /// partial[offset .. offset + threads). Callers alternate two offsets between consecutive sums, so a
    /// thread still reading one sum's result is never overwritten by the next sum's first store.
    /// </summary>
    public static float Sum(ArrayView<float> partial, int offset, float value, int tid, int threads)
    {
        if (threads == 1) return value;
        partial[offset + tid] = value;
        Group.Barrier();
        for (int half = HalfSpan(threads); half > 0; half >>= 1)
        {
            if (tid < half && tid + half < threads) partial[offset + tid] += partial[offset + tid + half];
            Group.Barrier();
        }
        return partial[offset];
    }

    /// <summary>Two sums at once (one set of barriers): partial[0 .. threads) and partial[second ..).
    /// A trailing barrier protects the results from the next call's stores.</summary>
    public static (float, float) Sum2(ArrayView<float> partial, int second, float a, float b, int tid, int threads)
    {
        if (threads == 1) return (a, b);
        partial[tid] = a;
        partial[second + tid] = b;
        Group.Barrier();
        for (int half = HalfSpan(threads); half > 0; half >>= 1)
        {
            if (tid < half && tid + half < threads)
            {
                partial[tid] += partial[tid + half];
                partial[second + tid] += partial[second + tid + half];
            }
            Group.Barrier();
        }
        float ra = partial[0], rb = partial[second];
        Group.Barrier();
        return (ra, rb);
    }

    /// <summary>Half the smallest power of two ≥ threads: the first stride of the tree.</summary>
    static int HalfSpan(int threads)
    {
        int span = 1;
        while (span < threads) span <<= 1;
        return span >> 1;
    }
}
