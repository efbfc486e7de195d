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
/// Per-channel sums are deterministic. gpu policy, layers with at least <see cref="SplitBelowChannels"/> channels: one
/// group per channel, each thread sums a strided share of the channel in a fixed order, then a shared-memory tree sized
/// by the group combines the partial sums (one launch forward, one backward). Layers with fewer channels (and more than
/// one piece) would keep only a few groups busy, so their values are cut into pieces of <see cref="PieceLength"/> and
/// each (channel, piece) unit is a group's work, in two launches: forward, the pieces' mean and M2 to a workspace, then
/// every unit combines its channel's pieces in order and normalizes its piece; backward, the pieces' two gradient sums,
/// then every unit sums its channel's pieces in order and writes its piece of dx. Which path runs depends on the shape
/// alone, and a unit's arithmetic on the group size alone, so any grid gives the same bits.
/// host policy: one task sums the channel in fixed 8-lane SIMD blocks (<see cref="HostBatchNorm"/>). Either way the
/// order depends only on the group size (or the shape), so one device gives bit-identical results. No float atomics.
/// </remarks>
public sealed class BatchNorm
{
    public const float Epsilon = 1e-5f;
    /// <summary>The largest group the shared-memory reduction holds (CUDA's limit).</summary>
    const int MaxGroupSize = 1024;
    /// <summary>Layers with fewer channels than this run the split kernels (when they have more than one piece): 132 is
    /// an H100's SM count, under which one group per channel leaves SMs idle. A constant, not the device's SM count, so
    /// every device and grid runs the same arithmetic on a given shape.</summary>
    public const int SplitBelowChannels = 132;
    /// <summary>Values of one channel per unit of the split kernels (the last piece of a channel may be shorter):
    /// 16 per thread of a 256-thread group, and few pieces for every unit to combine.</summary>
    public const int PieceLength = 4096;

    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape, float> _forwardGrouped;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape> _backwardGrouped;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, BatchNormShape> _pieceStatistics;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape, float> _normalizePieces;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape> _pieceGradientSums;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape> _pieceInputGradient;

    public BatchNorm(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _forwardGrouped = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape, float>(ForwardTrainingGroupedKernel);
        _backwardGrouped = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape>(BackwardGroupedKernel);
        _pieceStatistics = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, BatchNormShape>(PieceStatisticsKernel);
        _normalizePieces = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape, float>(NormalizePiecesKernel);
        _pieceGradientSums = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            BatchNormShape>(PieceGradientSumsKernel);
        _pieceInputGradient = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, BatchNormShape>(PieceInputGradientKernel);
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
            double extra = (residual.IsValid ? 8.0 : 0) + (act != Activation.None ? 8.0 : 0);
            var output = act != Activation.None ? activated : y;
            var shortcut = residual.IsValid ? residual : y;
            if (Splits(ref s))
            {
                // Split: every (channel, piece) unit writes its piece's mean and M2, then normalizes with all of its channel's.
                long units = (long)channels * s.Pieces;
                var partials = _device.Workspace(PartialsName, 2 * units);
                var grid = PerGroup(units);
                if (_device.Launch(nameof(PieceStatisticsKernel), grid, units * grid.GroupDim.X, 4.0 * x.Length, 8.0 * x.Length + 8.0 * units))
                    _pieceStatistics(grid, x, partials, s);
                if (_device.Launch(nameof(NormalizePiecesKernel), grid, units * grid.GroupDim.X, 4.0 * x.Length + 4.0 * units * s.Pieces,
                    (8.0 + extra) * x.Length + 8.0 * units * s.Pieces))
                    _normalizePieces(grid, x, gamma, beta, y, saveMean, saveInvStd, runningMean, runningVar, output, shortcut, partials, s, momentum);
            }
            else
            {
                var grid = PerGroup(channels);
                if (_device.Launch(nameof(ForwardTrainingGroupedKernel), grid, (long)channels * _device.GroupSize, 8.0 * x.Length, (16.0 + extra) * x.Length))
                    _forwardGrouped(grid, x, gamma, beta, y, saveMean, saveInvStd, runningMean, runningVar, output, shortcut, s, momentum);
            }
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
            double extra = act != Activation.None ? 8.0 : 0;
            var preActivation = act != Activation.None ? normalized : dy;
            if (Splits(ref s))
            {
                // Split: every (channel, piece) unit writes its piece's two sums, then its piece of dx from all of its channel's.
                long units = (long)channels * s.Pieces;
                var partials = _device.Workspace(PartialsName, 2 * units);
                var grid = PerGroup(units);
                if (_device.Launch(nameof(PieceGradientSumsKernel), grid, units * grid.GroupDim.X, 4.0 * x.Length, (8.0 + extra / 2) * x.Length + 8.0 * units))
                    _pieceGradientSums(grid, x, dy, preActivation, saveMean, partials, s);
                if (_device.Launch(nameof(PieceInputGradientKernel), grid, units * grid.GroupDim.X, 6.0 * x.Length + 2.0 * units * s.Pieces,
                    (12.0 + extra / 2) * x.Length + 8.0 * units * s.Pieces))
                    _pieceInputGradient(grid, x, dy, preActivation, gamma, saveMean, saveInvStd, dx, dgamma, dbeta, partials, s);
            }
            else
            {
                var grid = PerGroup(channels);
                if (_device.Launch(nameof(BackwardGroupedKernel), grid, (long)channels * _device.GroupSize, 10.0 * x.Length, (20.0 + extra) * x.Length))
                    _backwardGrouped(grid, x, dy, preActivation, gamma, saveMean, saveInvStd, dx, dgamma, dbeta, s);
            }
        }
    }

    /// <summary>One group per work unit, a channel or a (channel, piece) (groups loop over units when there are more
    /// units than groups).</summary>
    KernelConfig PerGroup(long units) =>
        _device.Groups((int)Math.Min(units, _device.MaxGroups), Math.Min(_device.GroupSize, MaxGroupSize));

    /// <summary>The split kernels' partial sums, two per (channel, piece); forward and backward take turns in stream order.</summary>
    const string PartialsName = "batchnorm.partials";

    /// <summary>Whether the layer runs the split kernels, setting <see cref="BatchNormShape.Pieces"/>: few channels and more
    /// than one piece (with one piece the split would only add a launch). The shape alone decides.</summary>
    static bool Splits(ref BatchNormShape s)
    {
        s.Pieces = (int)(((long)s.Batch * s.Spatial + PieceLength - 1) / PieceLength);
        return s.Channels < SplitBelowChannels && s.Pieces > 1;
    }

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
        Normalize(x, gamma, beta, y, activated, residual, s, c, tid, threads, n, mean, invStd);
        if (tid == 0) SaveStatistics(saveMean, saveInvStd, runningMean, runningVar, c, mean, invStd, variance, momentum);
    }

    /// <summary>y = (x − mean)·gamma·invStd + beta (+ residual), activated = act(y), over channel c's values j = first,
    /// first + step, … below end.</summary>
    static void Normalize(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
        ArrayView<float> activated, ArrayView<float> residual, BatchNormShape s, int c, int first, int step, int end, float mean, float invStd)
    {
        float scale = gamma[c] * invStd, shift = beta[c];
        for (var e = new ChannelWalk(s, c, first, step); e.J < end; e.Next())
        {
            int i = e.Index;
            float v = (x[i] - mean) * scale + shift;
            if (s.Residual != 0) v += residual[i];
            y[i] = v;
            if (s.Act != 0) activated[i] = Activations.Apply(s.Act, v);
        }
    }

    /// <summary>Channel c's saved statistics for the backward, and the running ones (Paddle's momentum convention).</summary>
    static void SaveStatistics(ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> runningMean, ArrayView<float> runningVar,
        int c, float mean, float invStd, float variance, float momentum)
    {
        saveMean[c] = mean;
        saveInvStd[c] = invStd;
        runningMean[c] = momentum * runningMean[c] + (1f - momentum) * mean;
        runningVar[c] = momentum * runningVar[c] + (1f - momentum) * variance;
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
        // Every thread has read the sums, so dx may overwrite dy in place below.
        InputGradient(x, dy, normalized, gamma, dx, s, c, tid, threads, n, mean, invStd, dyTotal, dyCentredTotal);
        if (tid == 0)
        {
            dgamma[c] = dyCentredTotal * invStd;
            dbeta[c] = dyTotal;
        }
    }

    /// <summary>dx = gamma·invStd·(g − Σg/n − x̂·Σg·x̂/n) over channel c's values j = first, first + step, … below end,
    /// given the channel's Σg and Σg·(x − mean). Reads dy at an index before writing dx there, so dx may be dy.</summary>
    static void InputGradient(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> normalized, ArrayView<float> gamma, ArrayView<float> dx,
        BatchNormShape s, int c, int first, int step, int end, float mean, float invStd, float dyTotal, float dyCentredTotal)
    {
        float inverseCount = 1f / (s.Batch * s.Spatial);
        float scale = gamma[c] * invStd, meanDy = dyTotal * inverseCount, meanDyXhat = dyCentredTotal * invStd * inverseCount;
        for (var e = new ChannelWalk(s, c, first, step); e.J < end; e.Next())
        {
            int i = e.Index;
            float xhat = (x[i] - mean) * invStd;
            dx[i] = scale * (OutputGradient(dy, normalized, s, i) - meanDy - xhat * meanDyXhat);
        }
    }

    // ---- Split kernels: (channel, piece) units, for layers with few channels (see SplitBelowChannels) ----

    /// <summary>Work unit u's channel and its piece's values [start, end) among the channel's batch·spatial ones.</summary>
    static (int Channel, int Start, int End) Piece(BatchNormShape s, int u)
    {
        int c = u / s.Pieces, start = (u - c * s.Pieces) * PieceLength, n = s.Batch * s.Spatial;
        return (c, start, n - start > PieceLength ? start + PieceLength : n);
    }

    /// <summary>Split forward, launch 1: unit u's piece mean and M2 = Σ(x − piece mean)² (two passes, so a large mean
    /// costs no digits) to partials[2u], partials[2u + 1].</summary>
    static void PieceStatisticsKernel(ArrayView<float> x, ArrayView<float> partials, BatchNormShape s)
    {
        var shared = SharedMemory.Allocate<float>(2 * MaxGroupSize);
        int tid = Group.IdxX, threads = Group.DimX, units = s.Channels * s.Pieces;
        for (int u = Grid.IdxX; u < units; u += Grid.DimX)
        {
            var (c, start, end) = Piece(s, u);
            float sum = 0f;
            for (var e = new ChannelWalk(s, c, start + tid, threads); e.J < end; e.Next()) sum += x[e.Index];
            float mean = SharedTreeSum.Sum(shared, 0, sum, tid, threads) / (end - start);
            float squares = 0f;
            for (var e = new ChannelWalk(s, c, start + tid, threads); e.J < end; e.Next())
            {
                float d = x[e.Index] - mean;
                squares += d * d;
            }
            float m2 = SharedTreeSum.Sum(shared, MaxGroupSize, squares, tid, threads);
            if (tid == 0)
            {
                partials[2 * u] = mean;
                partials[2 * u + 1] = m2;
            }
        }
    }

    /// <summary>Split forward, launch 2: every thread combines unit u's channel's pieces, p in order (Chan's parallel
    /// formula in its k-way form: mean = Σ n_p·mean_p / n, M2 = Σ M2_p + n_p·(mean_p − mean)²; a few pieces, so no
    /// shared memory), then the group normalizes its piece. Unit p = 0 saves the statistics.</summary>
    static void NormalizePiecesKernel(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y,
        ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> runningMean, ArrayView<float> runningVar,
        ArrayView<float> activated, ArrayView<float> residual, ArrayView<float> partials, BatchNormShape s, float momentum)
    {
        int tid = Group.IdxX, threads = Group.DimX, units = s.Channels * s.Pieces, n = s.Batch * s.Spatial;
        float inverseCount = 1f / n;
        for (int u = Grid.IdxX; u < units; u += Grid.DimX)
        {
            var (c, start, end) = Piece(s, u);
            int first = 2 * c * s.Pieces;
            float total = 0f;
            for (int p = 0; p < s.Pieces; p++) total += PieceCount(p, n) * partials[first + 2 * p];
            float mean = total * inverseCount, m2 = 0f;
            for (int p = 0; p < s.Pieces; p++)
            {
                float d = partials[first + 2 * p] - mean;
                m2 += partials[first + 2 * p + 1] + PieceCount(p, n) * d * d;
            }
            float variance = m2 * inverseCount;
            float invStd = 1f / XMath.Sqrt(variance + Epsilon);
            Normalize(x, gamma, beta, y, activated, residual, s, c, start + tid, threads, end, mean, invStd);
            if (tid == 0 && start == 0) SaveStatistics(saveMean, saveInvStd, runningMean, runningVar, c, mean, invStd, variance, momentum);
        }
    }

    /// <summary>The number of values in piece p of a channel of n.</summary>
    static float PieceCount(int p, int n) => n - p * PieceLength > PieceLength ? PieceLength : n - p * PieceLength;

    /// <summary>Split backward, launch 1: unit u's piece sums Σg and Σg·(x − mean) (g: dy through the fused activation)
    /// to partials[2u], partials[2u + 1].</summary>
    static void PieceGradientSumsKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> normalized, ArrayView<float> saveMean,
        ArrayView<float> partials, BatchNormShape s)
    {
        var shared = SharedMemory.Allocate<float>(2 * MaxGroupSize);
        int tid = Group.IdxX, threads = Group.DimX, units = s.Channels * s.Pieces;
        for (int u = Grid.IdxX; u < units; u += Grid.DimX)
        {
            var (c, start, end) = Piece(s, u);
            float mean = saveMean[c], sumDy = 0f, sumDyCentred = 0f;
            for (var e = new ChannelWalk(s, c, start + tid, threads); e.J < end; e.Next())
            {
                int i = e.Index;
                float g = OutputGradient(dy, normalized, s, i);
                sumDy += g;
                sumDyCentred += g * (x[i] - mean);
            }
            var (dyTotal, dyCentredTotal) = SharedTreeSum.Sum2(shared, MaxGroupSize, sumDy, sumDyCentred, tid, threads);
            if (tid == 0)
            {
                partials[2 * u] = dyTotal;
                partials[2 * u + 1] = dyCentredTotal;
            }
        }
    }

    /// <summary>Split backward, launch 2: every thread sums unit u's channel's piece sums, p in order, then the group
    /// writes its piece of dx. Unit p = 0 writes dgamma and dbeta.</summary>
    static void PieceInputGradientKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> normalized, ArrayView<float> gamma,
        ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> dx, ArrayView<float> dgamma, ArrayView<float> dbeta,
        ArrayView<float> partials, BatchNormShape s)
    {
        int tid = Group.IdxX, threads = Group.DimX, units = s.Channels * s.Pieces;
        for (int u = Grid.IdxX; u < units; u += Grid.DimX)
        {
            var (c, start, end) = Piece(s, u);
            int first = 2 * c * s.Pieces;
            float dyTotal = 0f, dyCentredTotal = 0f;
            for (int p = 0; p < s.Pieces; p++)
            {
                dyTotal += partials[first + 2 * p];
                dyCentredTotal += partials[first + 2 * p + 1];
            }
            float mean = saveMean[c], invStd = saveInvStd[c];
            InputGradient(x, dy, normalized, gamma, dx, s, c, start + tid, threads, end, mean, invStd, dyTotal, dyCentredTotal);
            if (tid == 0 && start == 0)
            {
                dgamma[c] = dyCentredTotal * invStd;
                dbeta[c] = dyTotal;
            }
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
    /// <summary>Pieces of <see cref="BatchNorm.PieceLength"/> values per channel (the split kernels' units per channel).</summary>
    public int Pieces;
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
