using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>Sizes and options of one CTC launch, passed to the kernels as one struct.</summary>
public struct CtcShape
{
    public int Batch, Time, Classes, Blank;
    /// <summary>Row length of the alpha/beta tables: 2·Time + 1, the most states a feasible label can have.</summary>
    public int MaxStates;
    /// <summary>Length of the concatenated label array (labels beyond it make a sample invalid).</summary>
    public int LabelCount;
    public int ZeroInfinity;
    /// <summary>Factor on every gradient element (e.g. 1/batch for a mean loss), applied as the last operation.</summary>
    public float GradientScale;
}

/// <summary>
/// Scratch memory of one CTC configuration (batch, time, classes), allocated once and reused every step:
/// the log-probabilities, the alpha and beta tables and per-sample values.
/// </summary>
public sealed class CtcWorkspace : IDisposable
{
    public int Batch { get; }
    public int Time { get; }
    public int Classes { get; }
    /// <summary>log-softmax of the logits, [batch, time, classes]; valid after <see cref="Ctc.LossAndGradient"/>.</summary>
    public Tensor<float> LogProbs { get; }
    internal Tensor<float> Alpha { get; }
    internal Tensor<float> Beta { get; }
    internal Tensor<int> Offsets { get; }
    /// <summary>−log p(label|x) per sample before zeroInfinity; +∞ for infeasible or invalid samples.</summary>
    internal Tensor<float> NegLogLikelihood { get; }

    internal CtcWorkspace(Device device, int batch, int time, int classes)
    {
        Batch = batch; Time = time; Classes = classes;
        LogProbs = device.Allocate(batch, time, classes);
        Alpha = device.Allocate(batch, time, 2 * time + 1);
        Beta = device.Allocate(batch, time, 2 * time + 1);
        Offsets = device.Allocate<int>(batch);
        NegLogLikelihood = device.Allocate(batch);
    }

    public void Dispose()
    {
        LogProbs.Dispose(); Alpha.Dispose(); Beta.Dispose(); Offsets.Dispose(); NegLogLikelihood.Dispose();
    }
}

/// <summary>
/// CTC loss in log space with the gradient with respect to the raw logits fused (softmax − posterior occupancy).
/// Steps: log-softmax over classes; label offsets; alpha and beta over the extended label (blanks interleaved,
/// S = 2L+1 states); per-sample loss −log p(label|x); gradient exp(logp) everywhere, then
/// exp(logp) − Σ_{s: l'(s)=k} exp(alpha + beta + loss) at the label's classes.
/// beta[t, s] excludes the emission at t, so alpha[t, s] + beta[t, s] is the log-probability of all paths in
/// state s at step t.
/// </summary>
public sealed class Ctc
{
    /// <summary>Largest group the shared-memory reductions hold (a compile-time size for shared memory).</summary>
    const int MaxGroupSize = 1024;
    const float NegInf = float.NegativeInfinity;
    const int Feasible = 0, Infeasible = 1, Invalid = 2;

    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int> _logSoftmaxRows, _logSoftmaxGroups;
    readonly Action<KernelConfig, ArrayView<int>, ArrayView<int>, int> _offsets;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, CtcShape> _alphaBetaThreads, _alphaBetaGroups;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, CtcShape> _softmaxGradient;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, CtcShape> _occupancy;

    public Ctc(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _logSoftmaxRows = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int>(LogSoftmaxRowsKernel);
        _logSoftmaxGroups = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int>(LogSoftmaxGroupsKernel);
        _offsets = acc.LoadStreamKernel<ArrayView<int>, ArrayView<int>, int>(OffsetsKernel);
        _alphaBetaThreads = acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, CtcShape>(AlphaBetaThreadsKernel);
        _alphaBetaGroups = acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, CtcShape>(AlphaBetaGroupsKernel);
        _softmaxGradient = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, CtcShape>(SoftmaxGradientKernel);
        _occupancy = acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, CtcShape>(OccupancyKernel);
    }

    /// <summary>gpu policy: one group per row/sample with shared-memory reductions and a barrier per time step;
    /// host policy: one thread per row/sample with no barriers (a barrier is an OS wait on the CPU accelerator).</summary>
    bool Grouped => !_device.UsesHost;

    public CtcWorkspace CreateWorkspace(int batch, int time, int classes)
    {
        if (batch < 1 || time < 1 || classes < 1)
            throw new ArgumentException($"CTC needs batch, time and classes ≥ 1, got batch={batch} time={time} classes={classes}");
        return new CtcWorkspace(_device, batch, time, classes);
    }

    /// <summary>logProbs[r, k] = logits[r, k] − log Σ_j exp(logits[r, j]) for each of <paramref name="rows"/> rows.</summary>
    public void LogSoftmax(ArrayView<float> logits, ArrayView<float> logProbs, int rows, int classes)
    {
        if (rows < 0 || classes < 1) throw new ArgumentException($"bad log-softmax shape rows={rows} classes={classes}");
        if (logits.Length != (long)rows * classes) throw new ArgumentException($"logits have {logits.Length} elements, expected {rows}x{classes}");
        if (logProbs.Length != logits.Length) throw new ArgumentException($"logProbs have {logProbs.Length} elements, expected {logits.Length}");
        if (rows == 0) return;
        long n = (long)rows * classes;
        if (Grouped)
        {
            var config = GroupsFor(rows, classes);
            if (_device.Launch(nameof(LogSoftmaxGroupsKernel), config, (long)rows * config.GroupDim.X, 4.0 * n, 8.0 * n))
                _logSoftmaxGroups(config, logits, logProbs, rows, classes);
        }
        else if (_device.Launch(nameof(LogSoftmaxRowsKernel), rows, 4.0 * n, 8.0 * n, out var grid))
            _logSoftmaxRows(grid, logits, logProbs, rows, classes);
    }

    /// <summary>
    /// Per-sample loss −log p(label|x) and gradient d loss[b] / d logits (same layout as logits; it may be the
    /// logits buffer itself). labels: all label sequences concatenated; labelLengths[b]: sample b's length.
    /// Infeasible samples (L + adjacent repeats > T) give +∞ loss and zero gradient, or 0 and 0 with
    /// <paramref name="zeroInfinity"/>. Invalid samples (negative length, labels past the end of the array,
    /// a label out of [0, classes) or equal to blank) give NaN loss and zero gradient. The gradient is multiplied
    /// by <paramref name="gradientScale"/> as it is written (the 1/batch of a mean loss without a separate launch;
    /// the same bits as scaling afterwards); the losses are not.
    /// </summary>
    public void LossAndGradient(ArrayView<float> logits, ArrayView<int> labels, ArrayView<int> labelLengths,
        ArrayView<float> loss, ArrayView<float> gradient, CtcWorkspace workspace, int blank = 0, bool zeroInfinity = false,
        float gradientScale = 1f)
    {
        int b = workspace.Batch, t = workspace.Time, c = workspace.Classes;
        long n = (long)b * t * c;
        if (logits.Length != n) throw new ArgumentException($"logits have {logits.Length} elements, expected [{b},{t},{c}] = {n}");
        if (gradient.Length != n) throw new ArgumentException($"gradient has {gradient.Length} elements, expected {n}");
        if (loss.Length != b) throw new ArgumentException($"loss has {loss.Length} elements, expected batch {b}");
        if (labelLengths.Length != b) throw new ArgumentException($"labelLengths has {labelLengths.Length} elements, expected batch {b}");
        if (blank < 0 || blank >= c) throw new ArgumentException($"blank {blank} is outside [0, {c})");
        var shape = new CtcShape
        {
            Batch = b, Time = t, Classes = c, Blank = blank, MaxStates = 2 * t + 1,
            LabelCount = (int)labels.Length, ZeroInfinity = zeroInfinity ? 1 : 0, GradientScale = gradientScale,
        };
        var ws = workspace;
        bool grouped = Grouped;
        LogSoftmax(logits, ws.LogProbs.View, b * t, c);
        if (_device.Launch(nameof(OffsetsKernel), b, b, 8.0 * b, out var grid))
            _offsets(grid, labelLengths, ws.Offsets.View, b);
        var alphaBeta = grouped ? _alphaBetaGroups : _alphaBetaThreads;
        var config = grouped ? GroupsFor(b, 2 * t + 1) : _device.GridStride(b);
        double lattice = 2.0 * b * t * (2 * t + 1);
        if (_device.Launch(grouped ? nameof(AlphaBetaGroupsKernel) : nameof(AlphaBetaThreadsKernel), config,
                grouped ? (long)b * config.GroupDim.X : b, 10 * lattice, 12 * lattice))
            alphaBeta(config, ws.LogProbs.View, labels, labelLengths, ws.Offsets.View, ws.Alpha.View, ws.Beta.View,
                ws.NegLogLikelihood.View, loss, shape);
        if (_device.Launch(nameof(SoftmaxGradientKernel), n, 3.0 * n, 8.0 * n, out var gradientGrid))
            _softmaxGradient(gradientGrid, ws.LogProbs.View, ws.NegLogLikelihood.View, gradient, shape);
        if (_device.Launch(nameof(OccupancyKernel), (long)b * t, 5 * lattice, 8 * lattice, out var occupancyGrid))
            _occupancy(occupancyGrid, ws.LogProbs.View, labels, labelLengths, ws.Offsets.View,
                ws.Alpha.View, ws.Beta.View, ws.NegLogLikelihood.View, gradient, shape);
    }

    /// <summary>One group per item, sized to the work of one item (whole warps, at most the device's group).</summary>
    KernelConfig GroupsFor(int items, int workPerItem)
    {
        int warp = Math.Max(1, _device.WarpSize);
        int limit = Math.Min(_device.GroupSize, MaxGroupSize);
        int size = Math.Min(limit, (workPerItem + warp - 1) / warp * warp);
        int groups = Math.Min(items, Math.Max(1, _device.MaxGroups * Math.Max(1, _device.GroupSize / size)));
        return _device.Groups(groups, size);
    }

    // ---------------------------------------------------------------- helpers (run inside kernels)

    /// <summary>log(exp(a) + exp(b)) without overflow or underflow; logAdd(−∞, −∞) = −∞.</summary>
    static float LogAdd(float a, float b)
    {
        float hi = XMath.Max(a, b), lo = XMath.Min(a, b);
        if (hi == NegInf) return NegInf;
        return hi + XMath.Log(1f + XMath.Exp(lo - hi));
    }

    /// <summary>Merges a running (max, Σ exp(x − max)) pair with another; empty pairs are (−∞, 0).</summary>
    static void MergeMaxSum(ref float max, ref float sum, float otherMax, float otherSum)
    {
        if (otherMax > max)
        {
            sum = sum * XMath.Exp(max - otherMax) + otherSum;
            max = otherMax;
        }
        else if (otherMax > NegInf)
        {
            sum += otherSum * XMath.Exp(otherMax - max);
        }
    }

    /// <summary>Class of state s of the extended label (even states are blanks).</summary>
    static int Symbol(ArrayView<int> labels, int offset, int s, int blank) =>
        (s & 1) == 0 ? blank : labels[offset + (s >> 1)];

    /// <summary>Whether the alpha recursion may skip from state s − 2 to s (s a label different from the one before).</summary>
    static bool CanSkip(ArrayView<int> labels, int offset, int s) =>
        (s & 1) == 1 && s >= 3 && labels[offset + (s >> 1)] != labels[offset + (s >> 1) - 1];

    /// <summary>Feasible, Infeasible (L + adjacent repeats > T) or Invalid (bad length, offset or label id).</summary>
    static int Status(ArrayView<int> labels, ArrayView<int> lengths, ArrayView<int> offsets, CtcShape shape, int b)
    {
        int length = lengths[b], offset = offsets[b];
        if (length < 0 || offset < 0 || (long)offset + length > shape.LabelCount) return Invalid;
        int repeats = 0;
        for (int j = 0; j < length; j++)
        {
            int label = labels[offset + j];
            if (label < 0 || label >= shape.Classes || label == shape.Blank) return Invalid;
            if (j > 0 && label == labels[offset + j - 1]) repeats++;
        }
        return length + repeats > shape.Time ? Infeasible : Feasible;
    }

    /// <summary>alpha row t for states first, first + step, … &lt; states (row 0 is the start distribution).</summary>
    static void AlphaRow(ArrayView<float> logp, ArrayView<int> labels, ArrayView<float> alpha, CtcShape shape,
        int b, int offset, int states, int t, int first, int step)
    {
        int row = (b * shape.Time + t) * shape.Classes;
        int cur = (b * shape.Time + t) * shape.MaxStates, prev = cur - shape.MaxStates;
        for (int s = first; s < states; s += step)
        {
            float emit = logp[row + Symbol(labels, offset, s, shape.Blank)];
            float a;
            if (t == 0)
            {
                a = s < 2 ? emit : NegInf;
            }
            else
            {
                a = alpha[prev + s];
                if (s >= 1) a = LogAdd(a, alpha[prev + s - 1]);
                if (CanSkip(labels, offset, s)) a = LogAdd(a, alpha[prev + s - 2]);
                a += emit;
            }
            alpha[cur + s] = a;
        }
    }

    /// <summary>beta row t (emissions after t only): the last row is 0 at the two final states, −∞ elsewhere.</summary>
    static void BetaRow(ArrayView<float> logp, ArrayView<int> labels, ArrayView<float> beta, CtcShape shape,
        int b, int offset, int states, int t, int first, int step)
    {
        int cur = (b * shape.Time + t) * shape.MaxStates, next = cur + shape.MaxStates;
        int nextRow = (b * shape.Time + t + 1) * shape.Classes;
        for (int s = first; s < states; s += step)
        {
            float v;
            if (t == shape.Time - 1)
            {
                v = s >= states - 2 ? 0f : NegInf;
            }
            else
            {
                v = beta[next + s] + logp[nextRow + Symbol(labels, offset, s, shape.Blank)];
                if (s + 1 < states) v = LogAdd(v, beta[next + s + 1] + logp[nextRow + Symbol(labels, offset, s + 1, shape.Blank)]);
                if (s + 2 < states && CanSkip(labels, offset, s + 2))
                    v = LogAdd(v, beta[next + s + 2] + logp[nextRow + labels[offset + ((s + 2) >> 1)]]);
            }
            beta[cur + s] = v;
        }
    }

    /// <summary>Writes the sample's −log-likelihood (workspace) and loss (output) from the last alpha row.</summary>
    static void FinishSample(ArrayView<float> alpha, ArrayView<float> nll, ArrayView<float> loss, CtcShape shape,
        int b, int status, int states)
    {
        float value = float.PositiveInfinity;
        if (status == Feasible)
        {
            int last = (b * shape.Time + shape.Time - 1) * shape.MaxStates;
            float logLikelihood = alpha[last + states - 1];
            if (states > 1) logLikelihood = LogAdd(logLikelihood, alpha[last + states - 2]);
            value = -logLikelihood;
        }
        nll[b] = value;
        if (status == Invalid) loss[b] = float.NaN;
        else loss[b] = shape.ZeroInfinity != 0 && value == float.PositiveInfinity ? 0f : value;
    }

    // ---------------------------------------------------------------- kernels

    /// <summary>CPU shape: one thread per row, two passes (max, then Σ exp).</summary>
    static void LogSoftmaxRowsKernel(ArrayView<float> x, ArrayView<float> y, int rows, int classes)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int p = r * classes;
            float max = NegInf;
            for (int k = 0; k < classes; k++) max = XMath.Max(max, x[p + k]);
            float sum = 0f;
            for (int k = 0; k < classes; k++) sum += XMath.Exp(x[p + k] - max);
            float lse = max + XMath.Log(sum);
            for (int k = 0; k < classes; k++) y[p + k] = x[p + k] - lse;
        }
    }

    /// <summary>GPU shape: one group per row; each thread keeps a running (max, Σ exp) over a strided slice,
    /// then one shared-memory tree merges the pairs (one reduction instead of separate max and sum passes).</summary>
    static void LogSoftmaxGroupsKernel(ArrayView<float> x, ArrayView<float> y, int rows, int classes)
    {
        var maxes = SharedMemory.Allocate<float>(MaxGroupSize);
        var sums = SharedMemory.Allocate<float>(MaxGroupSize);
        int tid = Group.IdxX, threads = Group.DimX, groups = Grid.DimX;
        for (int r = Grid.IdxX; r < rows; r += groups)
        {
            int p = r * classes;
            float max = NegInf, sum = 0f;
            for (int k = tid; k < classes; k += threads) MergeMaxSum(ref max, ref sum, x[p + k], 1f);
            maxes[tid] = max;
            sums[tid] = sum;
            Group.Barrier();
            // Halve the active range each step (any group size, not only powers of two), in a fixed order.
            for (int active = threads; active > 1;)
            {
                int half = (active + 1) >> 1;
                if (tid < active - half)
                {
                    float m = maxes[tid], s = sums[tid];
                    MergeMaxSum(ref m, ref s, maxes[tid + half], sums[tid + half]);
                    maxes[tid] = m;
                    sums[tid] = s;
                }
                Group.Barrier();
                active = half;
            }
            float lse = maxes[0] + XMath.Log(sums[0]);
            for (int k = tid; k < classes; k += threads) y[p + k] = x[p + k] - lse;
            Group.Barrier(); // everyone has read maxes[0] before the next row overwrites it
        }
    }

    /// <summary>offsets[b] = Σ lengths[0..b): each thread sums its own prefix (batches are small).</summary>
    static void OffsetsKernel(ArrayView<int> lengths, ArrayView<int> offsets, int batch)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int b = Grid.GlobalIndex.X; b < batch; b += stride)
        {
            int sum = 0;
            for (int j = 0; j < b; j++) sum += lengths[j];
            offsets[b] = sum;
        }
    }

    /// <summary>CPU shape: one thread per sample runs the whole alpha and beta recursions.</summary>
    static void AlphaBetaThreadsKernel(ArrayView<float> logp, ArrayView<int> labels, ArrayView<int> lengths,
        ArrayView<int> offsets, ArrayView<float> alpha, ArrayView<float> beta, ArrayView<float> nll,
        ArrayView<float> loss, CtcShape shape)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int b = Grid.GlobalIndex.X; b < shape.Batch; b += stride)
        {
            int status = Status(labels, lengths, offsets, shape, b);
            int offset = offsets[b], states = 2 * lengths[b] + 1;
            if (status == Feasible)
            {
                for (int t = 0; t < shape.Time; t++) AlphaRow(logp, labels, alpha, shape, b, offset, states, t, 0, 1);
                for (int t = shape.Time - 1; t >= 0; t--) BetaRow(logp, labels, beta, shape, b, offset, states, t, 0, 1);
            }
            FinishSample(alpha, nll, loss, shape, b, status, states);
        }
    }

    /// <summary>GPU shape: one group per sample, threads over states, a barrier between time steps. Every
    /// thread of a group computes the same status, so the barriers are uniform.</summary>
    static void AlphaBetaGroupsKernel(ArrayView<float> logp, ArrayView<int> labels, ArrayView<int> lengths,
        ArrayView<int> offsets, ArrayView<float> alpha, ArrayView<float> beta, ArrayView<float> nll,
        ArrayView<float> loss, CtcShape shape)
    {
        int tid = Group.IdxX, threads = Group.DimX, groups = Grid.DimX;
        for (int b = Grid.IdxX; b < shape.Batch; b += groups)
        {
            int status = Status(labels, lengths, offsets, shape, b);
            int offset = offsets[b], states = 2 * lengths[b] + 1;
            if (status == Feasible)
            {
                for (int t = 0; t < shape.Time; t++)
                {
                    AlphaRow(logp, labels, alpha, shape, b, offset, states, t, tid, threads);
                    Group.Barrier();
                }
                for (int t = shape.Time - 1; t >= 0; t--)
                {
                    BetaRow(logp, labels, beta, shape, b, offset, states, t, tid, threads);
                    Group.Barrier();
                }
            }
            if (tid == 0) FinishSample(alpha, nll, loss, shape, b, status, states);
        }
    }

    /// <summary>gradient = softmax = exp(logp) for feasible samples (the occupancy kernel then corrects the
    /// label's classes), 0 for samples whose −log-likelihood is +∞ (infeasible or invalid); times the scale.</summary>
    static void SoftmaxGradientKernel(ArrayView<float> logp, ArrayView<float> nll, ArrayView<float> gradient, CtcShape shape)
    {
        int n = shape.Batch * shape.Time * shape.Classes, perSample = shape.Time * shape.Classes;
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            gradient[i] = nll[i / perSample] < float.PositiveInfinity ? XMath.Exp(logp[i]) * shape.GradientScale : 0f;
    }

    /// <summary>One thread per (sample, step): for each distinct class k of the extended label,
    /// gradient[k] = (exp(logp[k]) − exp(logsumexp_{s: l'(s)=k}(alpha + beta) + nll))·scale. Each thread owns its
    /// row, so the writes never collide.</summary>
    static void OccupancyKernel(ArrayView<float> logp, ArrayView<int> labels, ArrayView<int> lengths,
        ArrayView<int> offsets, ArrayView<float> alpha, ArrayView<float> beta, ArrayView<float> nll,
        ArrayView<float> gradient, CtcShape shape)
    {
        int rows = shape.Batch * shape.Time, stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int b = r / shape.Time;
            float sampleNll = nll[b];
            if (!(sampleNll < float.PositiveInfinity)) continue;
            int offset = offsets[b], length = lengths[b];
            int tab = r * shape.MaxStates, row = r * shape.Classes;
            // The blank: every even state.
            float occ = NegInf;
            for (int s = 0; s <= 2 * length; s += 2) occ = LogAdd(occ, alpha[tab + s] + beta[tab + s]);
            gradient[row + shape.Blank] = (XMath.Exp(logp[row + shape.Blank]) - XMath.Exp(occ + sampleNll)) * shape.GradientScale;
            // Each label class once, at its first position: sum over all its positions.
            for (int j = 0; j < length; j++)
            {
                int k = labels[offset + j];
                bool seen = false;
                for (int i = 0; i < j; i++) seen |= labels[offset + i] == k;
                if (seen) continue;
                occ = NegInf;
                for (int i = j; i < length; i++)
                {
                    if (labels[offset + i] != k) continue;
                    int s = 2 * i + 1;
                    occ = LogAdd(occ, alpha[tab + s] + beta[tab + s]);
                }
                gradient[row + k] = (XMath.Exp(logp[row + k]) - XMath.Exp(occ + sampleNll)) * shape.GradientScale;
            }
        }
    }
}
