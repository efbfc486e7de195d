using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// Sizes of one bidirectional LSTM layer over x [Batch, Steps, Input] giving y [Batch, Steps, 2·Hidden]
/// (forward direction in columns [0, H), reverse direction in [H, 2H)), and the layout of its buffers.
/// <para>
/// Parameters are one flat buffer of <see cref="ParameterCount"/> floats (gradients use the same layout):
/// <code>
///   WeightIh  [2, 4H, Input]  at WeightIhOffset   (direction 0 then 1; rows are gates i, f, g, o, H each)
///   WeightHh  [2, 4H, H]      at WeightHhOffset
///   BiasIh    [2, 4H]         at BiasIhOffset
///   BiasHh    [2, 4H]         at BiasHhOffset
/// </code>
/// Each direction's block is PyTorch's weight_ih_l{k}[_reverse], weight_hh…, bias_ih…, bias_hh… unchanged,
/// at <see cref="WeightIh(int)"/>, <see cref="WeightHh(int)"/>, <see cref="BiasIh(int)"/>, <see cref="BiasHh(int)"/>.
/// Both directions' input weights are adjacent so the input projection is one [8H, Input] product.
/// </para>
/// <para>
/// Rows of activations are r = b·Steps + t. Forward saves <see cref="SavedLength"/> floats: the activated
/// gates [Batch, Steps, 2, 4H] (i, f, g, o per direction) and the cells [Batch, Steps, 2H], which backward
/// reads, followed by forward's own workspace, the recurrent weights transposed, W_hhᵀ [2, H, 4H] (written and
/// read by the gpu policy's recurrence kernel, unused under host). Backward needs <see cref="ScratchLength"/>
/// floats of scratch: the pre-activation gate gradients [Batch, Steps, 2, 4H] followed by the cell gradient
/// carried between steps [2, Batch, H] and the recurrent part of the hidden gradient [2, Batch, H] (both used
/// only under the host policy, where the recurrence runs step by step).
/// </para>
/// </summary>
public readonly record struct LstmShape(int Batch, int Steps, int Input, int Hidden)
{
    public int Gates => 4 * Hidden;
    public int InputLength => Batch * Steps * Input;
    public int OutputLength => Batch * Steps * 2 * Hidden;

    public int WeightIhOffset => 0;
    public int WeightHhOffset => 2 * Gates * Input;
    public int BiasIhOffset => WeightHhOffset + 2 * Gates * Hidden;
    public int BiasHhOffset => BiasIhOffset + 2 * Gates;
    public int ParameterCount => BiasHhOffset + 2 * Gates;

    /// <summary>Offset of direction d's W_ih [4H, Input] (d = 0 forward, 1 reverse).</summary>
    public int WeightIh(int direction) => WeightIhOffset + direction * Gates * Input;
    /// <summary>Offset of direction d's W_hh [4H, H].</summary>
    public int WeightHh(int direction) => WeightHhOffset + direction * Gates * Hidden;
    /// <summary>Offset of direction d's b_ih [4H].</summary>
    public int BiasIh(int direction) => BiasIhOffset + direction * Gates;
    /// <summary>Offset of direction d's b_hh [4H].</summary>
    public int BiasHh(int direction) => BiasHhOffset + direction * Gates;

    public int GatesLength => Batch * Steps * 2 * Gates;
    public int CellsLength => Batch * Steps * 2 * Hidden;
    /// <summary>W_hhᵀ [2, H, 4H]: the recurrent weights as the gpu forward reads them (see <see cref="Lstm"/>).</summary>
    public int TransposedWeightLength => 2 * Gates * Hidden;
    public int SavedLength => GatesLength + CellsLength + TransposedWeightLength;
    public int ScratchLength => GatesLength + 4 * Batch * Hidden;
}


/// <summary>Integers of one recurrent step of the host policy's step kernels, passed as one argument.</summary>
public struct LstmStep
{
    public int Batch, Steps, Hidden;
    /// <summary>Position in processing order: the forward direction is at t = Step, the reverse at t = Steps−1−Step.</summary>
    public int Step;
}

/// <summary>
/// A bidirectional LSTM layer (gates i, f, g, o; c' = f⊙c + i⊙g, h' = o⊙tanh(c'); zero initial state; the
/// reverse direction runs t = T−1…0). The input projection of all steps and both directions is one GEMM, and
/// backward ends with GEMMs and fixed-order sums for dx and the weight gradients. The recurrence between them
/// runs as the kernel policy says:
/// <list type="bullet">
/// <item><b>gpu</b>: one persistent launch per pass for all steps and both directions
/// (<see cref="ForwardSequenceKernel"/>, <see cref="BackwardSequenceKernel"/>). A group owns whole (direction,
/// batch) sequences, grid-stride over the 2·Batch of them, and keeps the state in shared memory across the
/// steps with one <c>Group.Barrier</c> per step: one sequence's recurrence never needs another group's data,
/// so there is no grid-wide synchronization and the bits do not depend on the grid size. Thread u of the group
/// owns hidden unit u (and u + group size, …): its four gate rows k·H + u, its cell and its hidden value, with
/// each dot product summed over a fixed ascending index. Forward reads the recurrent weights from the
/// transposed copy W_hhᵀ [2, H, 4H] (a transpose launch before it writes the copy into the saved buffer), so
/// at each m the threads of a warp read W_hhᵀ[m, k·H + u…u+31], consecutive addresses, while h_prev[m] is a
/// shared-memory broadcast; backward's dh[u] = Σ_r dG_next[r]·W_hh[r, u] reads row r of W_hh itself at
/// consecutive u, already coalesced. 2 + 1 launches forward (projection GEMM, transpose, recurrence).</item>
/// <item><b>host</b>: step by step, where the host GEMM is an order of magnitude faster than scalar kernel
/// code: each step's recurrent products are host GEMMs (one per direction) and host code
/// (<see cref="HostForwardStep"/>, <see cref="HostBackwardStep"/>, both directions at once) does the gates,
/// cell and hidden update.</item>
/// </list>
/// </summary>
public sealed class Lstm
{
    /// <summary>The largest hidden size the gpu policy's recurrence kernels hold in shared memory
    /// (forward 3·512 floats = 6 KB, backward 9·512 floats = 18 KB per group).</summary>
    public const int MaxGpuHidden = 512;

    readonly Device _device;
    readonly Gemm _gemm;
    readonly Bias _bias;
    readonly Transpose _transpose;
    // Only the gpu policy has recurrence kernels; the host policy's steps are host code.
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>? _forwardSequence, _backwardSequence;

    public Lstm(Device device)
    {
        _device = device;
        _gemm = new Gemm(device);
        _bias = new Bias(device);
        _transpose = new Transpose(device);
        var acc = device.Accelerator;
        if (!device.UsesHost)
        {
            _forwardSequence = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(ForwardSequenceKernel);
            _backwardSequence = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(BackwardSequenceKernel);
        }
    }

    /// <summary>
    /// y [B, T, 2H] = BiLSTM(x [B, T, In]) with <paramref name="parameters"/> laid out as <see cref="LstmShape"/>
    /// describes; fills <paramref name="saved"/> (<see cref="LstmShape.SavedLength"/>) for <see cref="Backward"/>.
    /// </summary>
    public void Forward(LstmShape s, ArrayView<float> parameters, ArrayView<float> x, ArrayView<float> y, ArrayView<float> saved)
    {
        Validate(s);
        Expect(parameters, s.ParameterCount, "parameters");
        Expect(x, s.InputLength, "x");
        Expect(y, s.OutputLength, "y");
        Expect(saved, s.SavedLength, "saved");
        var gates = saved.SubView(0, s.GatesLength);
        var cells = saved.SubView(s.GatesLength, s.CellsLength);
        int rows = s.Batch * s.Steps;

        // Input projection of every step and both directions: gates [rows, 8H] = x [rows, In] · W_ihᵀ.
        _gemm.Run(x, parameters.SubView(s.WeightIhOffset, 2 * s.Gates * s.Input), gates,
            GemmShape.RowMajor(rows, 2 * s.Gates, s.Input, transB: true));
        if (_device.UsesHost)
        {
            RunHostForwardSteps(s, parameters, y, gates, cells);
            return;
        }
        var wT = saved.SubView(s.GatesLength + s.CellsLength, s.TransposedWeightLength);
        _transpose.Run(parameters.SubView(s.WeightHhOffset, 2 * s.Gates * s.Hidden), wT, 2, s.Gates, s.Hidden);
        var grid = SequenceGroups(s);
        if (_device.Launch(nameof(ForwardSequenceKernel), grid, 2L * s.Batch * _device.GroupSize, SequenceFlops(s), SequenceBytes(s)))
            _forwardSequence!(grid, wT, parameters.SubView(s.BiasIhOffset, 4 * s.Gates), gates, cells, y,
                s.Batch, s.Steps, s.Hidden);
    }

    /// <summary>
    /// Inference on the host (host policy): y [B, T, 2H] = BiLSTM(x [B, T, In]) keeping nothing for a backward
    /// pass. <paramref name="projection"/> ([B, T, 8H], <see cref="LstmShape.GatesLength"/>) takes the input
    /// projection x·W_ihᵀ; then each direction (and, on many cores, each slice of the batch) runs all its steps
    /// on one core: per step the recurrent product of the slice's rows (a small GEMM against W_hhᵀ; one or two rows
    /// row by row against the packed W_hhᵀ, or as dot products without packed weights) is added in place, then the gates,
    /// cell and hidden state. <paramref name="packed"/> (<see cref="PackForInference"/>) holds the weights packed for the
    /// GEMMs; without it they are packed per call.
    /// </summary>
    public void Infer(LstmShape s, ArrayView<float> parameters, ArrayView<float> x, ArrayView<float> y, ArrayView<float> projection,
        LstmInferenceWeights? packed = null)
    {
        if (!_device.UsesHost) throw new NotSupportedException("the LSTM's inference recurrence is host code (host kernel policy)");
        Validate(s);
        Expect(parameters, s.ParameterCount, "parameters");
        Expect(x, s.InputLength, "x");
        Expect(y, s.OutputLength, "y");
        Expect(projection, s.GatesLength, "projection");
        HostMemory.Enter(_device, "the LSTM");
        unsafe
        {
            float* p = HostMemory.Pointer(parameters);
            HostGemm.Run(HostMemory.Pointer(x), p + s.WeightIhOffset, HostMemory.Pointer(projection),
                GemmShape.RowMajor(s.Batch * s.Steps, 2 * s.Gates, s.Input, transB: true), default, packed: packed?.Input);
            HostInferSequences(p, HostMemory.Pointer(projection), HostMemory.Pointer(y), s, packed);
        }
    }

    /// <summary>One layer's weights packed for <see cref="Infer"/>, from its parameters (laid out as
    /// <see cref="LstmShape"/> says) at <paramref name="offset"/> of <paramref name="values"/>.</summary>
    public static LstmInferenceWeights PackForInference(float[] values, int offset, int input, int hidden)
    {
        var s = new LstmShape(1, 1, input, hidden);
        return new(PackedOperand.RowsAsTransposedB(values, offset + s.WeightIhOffset, 2 * s.Gates, input),
            [PackedOperand.RowsAsTransposedB(values, offset + s.WeightHh(0), s.Gates, hidden),
             PackedOperand.RowsAsTransposedB(values, offset + s.WeightHh(1), s.Gates, hidden)]);
    }

    /// <summary>Rows of a batch slice below which the recurrent product runs as dot products rather than a GEMM.</summary>
    const int GemmRows = 3;

    [ThreadStatic] static float[]? t_sequence;

    static unsafe void HostInferSequences(float* parameters, float* projection, float* y, LstmShape s, LstmInferenceWeights? packed)
    {
        int h = s.Hidden, g4 = s.Gates;
        // Slices of at least 8 rows, enough of them to give every core a sequence.
        int slices = Math.Clamp(HostTeam.Cores / 2, 1, Math.Max(1, s.Batch / 8));
        nint pp = (nint)parameters, pg = (nint)projection, py = (nint)y;
        HostMemory.For(2 * slices, (long)s.Batch * s.Steps * g4 * (h + 8), (first, end) =>
        {
            for (int task = first; task < end; task++)
            {
                int d = task / slices, slice = task % slices;
                int b0 = (int)((long)s.Batch * slice / slices), rows = (int)((long)s.Batch * (slice + 1) / slices) - b0;
                float* cells = HostMemory.Scratch(ref t_sequence, g4 + rows * h), z = cells + rows * h;
                float* wHh = (float*)pp + s.WeightHh(d), bIh = (float*)pp + s.BiasIh(d), bHh = (float*)pp + s.BiasHh(d);
                var recurrent = new GemmShape
                {
                    M = rows, N = g4, K = h, Batch = 1, AM = s.Steps * 2 * h, AK = 1, BK = 1, BN = h,
                    Ldc = s.Steps * 2 * g4, Alpha = 1f, Beta = 1f,
                };
                for (int step = 0; step < s.Steps; step++)
                {
                    int t = d == 0 ? step : s.Steps - 1 - step, tPrev = d == 0 ? t - 1 : t + 1;
                    long gRow = (long)(b0 * s.Steps + t) * 2 * g4 + d * g4, yRow = (long)(b0 * s.Steps + t) * 2 * h + d * h;
                    long yPrev = (long)(b0 * s.Steps + tPrev) * 2 * h + d * h;
                    // Pre-activations of the slice's rows += h_prev · W_hhᵀ, in place: a GEMM, or row by row against the packed
                    // weights (the same bits), or dot products (per-call weights, one or two rows).
                    bool gemm = step > 0 && (rows >= GemmRows || HostGemm.RowsInPlace(packed?.Recurrent[d]));
                    if (gemm)
                        HostGemm.Run((float*)py + yPrev, wHh, (float*)pg + gRow, recurrent, default, parallel: false, packed: packed?.Recurrent[d]);
                    for (int r = 0; r < rows; r++)
                    {
                        long rowStride = (long)r * s.Steps;
                        float* pre = (float*)pg + gRow + rowStride * 2 * g4, hOut = (float*)py + yRow + rowStride * 2 * h, c = cells + r * h;
                        AddBiases(pre, bIh, bHh, z, g4);
                        if (step > 0 && !gemm) HostRows.Dots(wHh, (float*)py + yPrev + rowStride * 2 * h, z, g4, h, accumulate: true); // z += W_hh·h_prev
                        CellUpdate(z, c, hOut, h, step > 0);
                    }
                }
            }
        });
    }

    /// <summary>z = (pre + b_ih) + b_hh, eight at a time (the same two roundings per element as one at a time).</summary>
    static unsafe void AddBiases(float* pre, float* bIh, float* bHh, float* z, int n)
    {
        int q = 0;
        for (; q + 8 <= n; q += 8) (Vector256.Load(pre + q) + Vector256.Load(bIh + q) + Vector256.Load(bHh + q)).Store(z + q);
        for (; q < n; q++) z[q] = pre[q] + bIh[q] + bHh[q];
    }

    /// <summary>Gates i, f, g, o from the pre-activations z [4H] (in place); c = f⊙c + i⊙g (c = i⊙g at the first step),
    /// h = o⊙tanh(c). Eight units at a time (<see cref="HostMath"/>), the rest with MathF. The gates first, all 4H of
    /// them, then the cells: each pass's vectors are independent (a single pass, gates → cell → tanh, chained too long
    /// for the core to overlap them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void CellUpdate(float* z, float* c, float* hOut, int h, bool carry)
    {
        // Sixteen lanes where AVX-512 runs them, eight after (the same operations per lane either way), MathF for the rest.
        int wideEnd = Avx512F.IsSupported ? h / 16 * 16 : 0, vectorEnd = wideEnd + (h - wideEnd) / 8 * 8;
        for (int gate = 0; gate < 4; gate++)
        {
            float* zg = z + gate * h;
            if (gate == 2)
            {
                for (int j = 0; j < wideEnd; j += 16) HostMath.Tanh(Vector512.Load(zg + j)).Store(zg + j);
                for (int j = wideEnd; j < vectorEnd; j += 8) HostMath.Tanh(Vector256.Load(zg + j)).Store(zg + j);
            }
            else
            {
                for (int j = 0; j < wideEnd; j += 16) HostMath.Sigmoid(Vector512.Load(zg + j)).Store(zg + j);
                for (int j = wideEnd; j < vectorEnd; j += 8) HostMath.Sigmoid(Vector256.Load(zg + j)).Store(zg + j);
            }
        }
        for (int j = 0; j < wideEnd; j += 16)
        {
            var cell = Vector512.Load(z + j) * Vector512.Load(z + 2 * h + j);
            if (carry) cell += Vector512.Load(z + h + j) * Vector512.Load(c + j);
            cell.Store(c + j);
            (Vector512.Load(z + 3 * h + j) * HostMath.Tanh(cell)).Store(hOut + j);
        }
        for (int j = wideEnd; j < vectorEnd; j += 8)
        {
            var cell = Vector256.Load(z + j) * Vector256.Load(z + 2 * h + j);
            if (carry) cell += Vector256.Load(z + h + j) * Vector256.Load(c + j);
            cell.Store(c + j);
            (Vector256.Load(z + 3 * h + j) * HostMath.Tanh(cell)).Store(hOut + j);
        }
        for (int j = vectorEnd; j < h; j++) // the tail's pre-activations are still raw
        {
            float i = HostSigmoid(z[j]), f = HostSigmoid(z[h + j]), gg = MathF.Tanh(z[2 * h + j]), o = HostSigmoid(z[3 * h + j]);
            c[j] = (carry ? f * c[j] : 0f) + i * gg;
            hOut[j] = o * MathF.Tanh(c[j]);
        }
    }

    static float HostSigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>One group per (direction, batch) sequence, at most the device's groups (grid-stride over the rest).</summary>
    KernelConfig SequenceGroups(LstmShape s) => _device.Groups(Math.Min(2 * s.Batch, _device.MaxGroups), _device.GroupSize);

    /// <summary>Host policy: one launch of the elementwise step kernel per step, after the step's recurrent GEMMs.</summary>
    void RunHostForwardSteps(LstmShape s, ArrayView<float> parameters, ArrayView<float> y, ArrayView<float> gates, ArrayView<float> cells)
    {
        var biases = parameters.SubView(s.BiasIhOffset, 4 * s.Gates);
        for (int step = 0; step < s.Steps; step++)
        {
            if (step > 0)
                for (int d = 0; d < 2; d++)
                {
                    // gates[b, t, d] += h_prev[b] · W_hh[d]ᵀ, h_prev = y[b, t∓1, d]; the kernel then adds the biases.
                    int t = d == 0 ? step : s.Steps - 1 - step, tPrev = d == 0 ? t - 1 : t + 1;
                    int offY = tPrev * 2 * s.Hidden + d * s.Hidden, offG = t * 2 * s.Gates + d * s.Gates;
                    var shape = new GemmShape
                    {
                        M = s.Batch, N = s.Gates, K = s.Hidden, Batch = 1,
                        AM = s.Steps * 2 * s.Hidden, AK = 1, BK = 1, BN = s.Hidden, Ldc = s.Steps * 2 * s.Gates,
                        Alpha = 1f, Beta = 1f,
                    };
                    _gemm.Run(y.SubView(offY, y.Length - offY), parameters.SubView(s.WeightHh(d), s.Gates * s.Hidden),
                        gates.SubView(offG, gates.Length - offG), shape);
                }
            HostMemory.Enter(_device, "the LSTM steps");
            unsafe { HostForwardStep(HostMemory.Pointer(biases), HostMemory.Pointer(gates), HostMemory.Pointer(cells), HostMemory.Pointer(y), StepOf(s, step)); }
            }
    }

    /// <summary>
    /// Gradients of the layer from dy [B, T, 2H], given the forward's x, y and saved buffers: writes (overwrites)
    /// dx [B, T, In] and <paramref name="dParameters"/> (same layout as the parameters), using
    /// <paramref name="scratch"/> (<see cref="LstmShape.ScratchLength"/>).
    /// </summary>
    public void Backward(LstmShape s, ArrayView<float> parameters, ArrayView<float> x, ArrayView<float> y, ArrayView<float> saved,
        ArrayView<float> dy, ArrayView<float> dx, ArrayView<float> dParameters, ArrayView<float> scratch)
    {
        Validate(s);
        Expect(parameters, s.ParameterCount, "parameters");
        Expect(x, s.InputLength, "x");
        Expect(y, s.OutputLength, "y");
        Expect(saved, s.SavedLength, "saved");
        Expect(dy, s.OutputLength, "dy");
        Expect(dx, s.InputLength, "dx");
        Expect(dParameters, s.ParameterCount, "dParameters");
        Expect(scratch, s.ScratchLength, "scratch");
        var gates = saved.SubView(0, s.GatesLength);
        var cells = saved.SubView(s.GatesLength, s.CellsLength);
        var dGates = scratch.SubView(0, s.GatesLength);
        int rows = s.Batch * s.Steps, g2 = 2 * s.Gates;

        if (_device.UsesHost) RunHostBackwardSteps(s, parameters, dy, gates, cells, scratch);
        else
        {
            var grid = SequenceGroups(s);
            if (_device.Launch(nameof(BackwardSequenceKernel), grid, 2L * s.Batch * _device.GroupSize, SequenceFlops(s), SequenceBytes(s)))
                _backwardSequence!(grid, parameters.SubView(s.WeightHhOffset, 2 * s.Gates * s.Hidden), gates, cells, dy, dGates,
                    s.Batch, s.Steps, s.Hidden);
        }

        var wIh = parameters.SubView(s.WeightIhOffset, g2 * s.Input);
        // dW_ih [8H, In] = dGᵀ · x and dx [rows, In] = dG [rows, 8H] · W_ih [8H, In], one launch
        _gemm.Run(new GemmProduct(dGates, x, dParameters.SubView(s.WeightIhOffset, g2 * s.Input), GemmShape.RowMajor(g2, s.Input, rows, transA: true)),
            new GemmProduct(dGates, wIh, dx, GemmShape.RowMajor(rows, s.Input, g2)));
        RecurrentWeightGradient(s, y, dGates, dParameters);
        // Both biases enter every gate pre-activation unchanged: each gradient is the column sum of dG, summed once.
        var dBiasIh = dParameters.SubView(s.BiasIhOffset, g2);
        _bias.Gradient(dGates, dBiasIh, rows, g2, 1);
        dBiasIh.CopyTo(dParameters.SubView(s.BiasHhOffset, g2));
    }

    /// <summary>Host policy: the recurrence backward, one launch per step for both directions, latest step first,
    /// each after the GEMMs of the recurrent part of dh.</summary>
    void RunHostBackwardSteps(LstmShape s, ArrayView<float> parameters, ArrayView<float> dy, ArrayView<float> gates,
        ArrayView<float> cells, ArrayView<float> scratch)
    {
        var dGates = scratch.SubView(0, s.GatesLength);
        var dCell = scratch.SubView(s.GatesLength, 2 * s.Batch * s.Hidden);
        var dHidden = scratch.SubView(s.GatesLength + 2 * s.Batch * s.Hidden, 2 * s.Batch * s.Hidden);
        int bh = s.Batch * s.Hidden;
        for (int step = s.Steps - 1; step >= 0; step--)
        {
            if (step < s.Steps - 1)
                for (int d = 0; d < 2; d++)
                {
                    // dHidden[d, b] = dG[b, t±1, d] · W_hh[d]: the recurrent part of dh, which the kernel adds to dy.
                    int t = d == 0 ? step : s.Steps - 1 - step, tNext = d == 0 ? t + 1 : t - 1;
                    int offG = tNext * 2 * s.Gates + d * s.Gates;
                    var shape = new GemmShape
                    {
                        M = s.Batch, N = s.Hidden, K = s.Gates, Batch = 1,
                        AM = s.Steps * 2 * s.Gates, AK = 1, BK = s.Hidden, BN = 1, Ldc = s.Hidden, Alpha = 1f,
                    };
                    _gemm.Run(dGates.SubView(offG, dGates.Length - offG), parameters.SubView(s.WeightHh(d), s.Gates * s.Hidden),
                        dHidden.SubView(d * bh, bh), shape);
                }
            HostMemory.Enter(_device, "the LSTM steps");
            unsafe
            {
                HostBackwardStep(HostMemory.Pointer(gates), HostMemory.Pointer(cells), HostMemory.Pointer(dy), HostMemory.Pointer(dGates),
                    HostMemory.Pointer(dCell), HostMemory.Pointer(dHidden), StepOf(s, step));
            }
            }
    }

    /// <summary>
    /// dW_hh[d] [4H, H] = Σ over b and t of dG[b, t, d]ᵀ · h_prev, where h_prev is the direction's hidden state
    /// one step earlier in its own order (y at t−1 forward, t+1 reverse; the zero initial state adds nothing).
    /// Each direction is a product summed over the batch, K = T−1 shifted rows per sequence.
    /// </summary>
    void RecurrentWeightGradient(LstmShape s, ArrayView<float> y, ArrayView<float> dGates, ArrayView<float> dParameters)
    {
        int g = s.Gates, h = s.Hidden, rowG = 2 * g, rowY = 2 * h;
        if (s.Steps == 1)
        {
            // A single step only ever sees the zero initial state.
            for (int d = 0; d < 2; d++) Fill.Zero(_device, dParameters.SubView(s.WeightHh(d), g * h));
            return;
        }
        var shape = new GemmShape
        {
            M = g, N = h, K = s.Steps - 1, Batch = 1,
            AM = 1, AK = rowG, BK = rowY, BN = 1, Ldc = h, Alpha = 1f,
        }.Batched(s.Batch, s.Steps * rowG, s.Steps * rowY, 0, sumBatches: true);
        // Forward: dG rows t = 1…T−1 pair with y rows t−1. Reverse: dG rows t = 0…T−2 with y rows t+1.
        GemmProduct Direction(int d, int offG, int offY) => new(dGates.SubView(offG, dGates.Length - offG),
            y.SubView(offY, y.Length - offY), dParameters.SubView(s.WeightHh(d), g * h), shape);
        _gemm.Run(Direction(0, rowG, 0), Direction(1, g, rowY + h)); // both directions in one launch
    }

    /// <summary>The cell update of one step, both directions (~30 operations per hidden unit), and its traffic.</summary>
    static double CellFlops(LstmShape s) => 2.0 * s.Batch * 30.0 * s.Hidden;

    static double CellBytes(LstmShape s) => 4.0 * 2 * s.Batch * (2.0 * s.Gates + 3.0 * s.Hidden);

    /// <summary>All steps of both directions with the recurrent products (launch report estimates).</summary>
    static double SequenceFlops(LstmShape s) => s.Steps * (2.0 * s.Batch * 2.0 * s.Gates * s.Hidden + CellFlops(s));

    static double SequenceBytes(LstmShape s) => s.Steps * (CellBytes(s) + 4.0 * 2 * s.Gates * s.Hidden);

    static LstmStep StepOf(LstmShape s, int step) => new() { Batch = s.Batch, Steps = s.Steps, Hidden = s.Hidden, Step = step };

    void Validate(LstmShape s)
    {
        if (s.Batch < 1 || s.Steps < 1 || s.Input < 1 || s.Hidden < 1)
            throw new ArgumentException($"bad LSTM shape: batch {s.Batch}, steps {s.Steps}, input {s.Input}, hidden {s.Hidden} (all must be ≥ 1)");
        if ((long)s.Batch * s.Steps * 8 * Math.Max(s.Hidden, s.Input) > int.MaxValue)
            throw new ArgumentException($"LSTM shape {s} exceeds the 2^31 element limit");
        if (!_device.UsesHost && s.Hidden > MaxGpuHidden)
            throw new ArgumentException($"LSTM hidden size {s.Hidden} exceeds the gpu recurrence kernels' limit of {MaxGpuHidden} (shared memory per group)");
    }

    static void Expect(ArrayView<float> view, int length, string name)
    {
        if (view.Length != length) throw new ArgumentException($"LSTM {name} has {view.Length} elements, expected {length}");
    }

    static float Sigmoid(float x) => 1f / (1f + XMath.Exp(-x));

    /// <summary>
    /// tanh within a few ulp on every backend, for the gpu-policy kernels. XMath.Tanh becomes PTX's tanh.approx.f32
    /// (relative error up to 2⁻¹¹), which left the CUDA recurrence 7e-5 off the float64 reference on an H200.
    /// Cephes' tanhf: an odd polynomial below 0.625, where 1 − 2/(e²ˣ + 1) would lose digits to cancellation, and
    /// that formula above (exp through PTX's ex2.approx is within 2 ulp).
    /// </summary>
    internal static float Tanh(float x)
    {
        float a = XMath.Abs(x);
        if (a < 0.625f)
        {
            float z = x * x;
            return ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                - 3.33332819422e-1f) * z * x + x;
        }
        float t = 1f - 2f / (XMath.Exp(a + a) + 1f);
        return x < 0f ? -t : t;
    }

    /// <summary>
    /// The whole forward recurrence (gpu policy), one launch for every step and both directions. Group g owns the
    /// sequences q = g, g + groups, … of the 2·Batch (q = d·Batch + b) and runs each through all its steps; thread u
    /// owns hidden units u, u + group size, …: their four gate rows k·H + u, starting from the input projection
    /// and both biases and adding Σ_m W_hhᵀ[d, m, k·H + u]·h_prev[m] (m ascending; consecutive u read consecutive
    /// addresses), then the gates, cell and hidden state. Shared memory holds h (two buffers: step s reads one and
    /// writes the other) and the cell (each thread reads back only what it wrote), so one barrier per step
    /// orders the steps. Gates are overwritten in place with their activated values, which backward reads.
    /// <paramref name="wT"/>: W_hhᵀ [2, H, 4H]; <paramref name="biases"/>: b_ih [2, 4H] then b_hh [2, 4H].
    /// </summary>
    static void ForwardSequenceKernel(ArrayView<float> wT, ArrayView<float> biases, ArrayView<float> gates, ArrayView<float> cells,
        ArrayView<float> y, int batch, int steps, int hidden)
    {
        var hs = SharedMemory.Allocate<float>(2 * MaxGpuHidden);
        var cs = SharedMemory.Allocate<float>(MaxGpuHidden);
        int tid = Group.IdxX, threads = Group.DimX, groups = Grid.DimX;
        int h = hidden, g4 = 4 * h, sequences = 2 * batch;
        for (int q = Grid.IdxX; q < sequences; q += groups)
        {
            int d = q / batch, b = q % batch;
            int w = d * h * g4, bIh = d * g4, bHh = 2 * g4 + d * g4;
            for (int step = 0; step < steps; step++)
            {
                int t = d == 0 ? step : steps - 1 - step;
                int read = (step & 1) * MaxGpuHidden, write = MaxGpuHidden - read;
                int gRow = (b * steps + t) * 2 * g4 + d * g4, yRow = (b * steps + t) * 2 * h + d * h;
                for (int u = tid; u < h; u += threads)
                {
                    float ai = gates[gRow + u] + biases[bIh + u] + biases[bHh + u];
                    float af = gates[gRow + h + u] + biases[bIh + h + u] + biases[bHh + h + u];
                    float ag = gates[gRow + 2 * h + u] + biases[bIh + 2 * h + u] + biases[bHh + 2 * h + u];
                    float ao = gates[gRow + 3 * h + u] + biases[bIh + 3 * h + u] + biases[bHh + 3 * h + u];
                    float cPrev = 0f;
                    if (step > 0)
                    {
                        for (int m = 0; m < h; m++)
                        {
                            float hm = hs[read + m];
                            int row = w + m * g4 + u;
                            ai += wT[row] * hm;
                            af += wT[row + h] * hm;
                            ag += wT[row + 2 * h] * hm;
                            ao += wT[row + 3 * h] * hm;
                        }
                        cPrev = cs[u];
                    }
                    float i = Sigmoid(ai), f = Sigmoid(af), gg = Tanh(ag), o = Sigmoid(ao);
                    float c = f * cPrev + i * gg;
                    float hv = o * Tanh(c);
                    gates[gRow + u] = i;
                    gates[gRow + h + u] = f;
                    gates[gRow + 2 * h + u] = gg;
                    gates[gRow + 3 * h + u] = o;
                    cells[yRow + u] = c;
                    y[yRow + u] = hv;
                    cs[u] = c;
                    hs[write + u] = hv;
                }
                Group.Barrier();
            }
        }
    }

    /// <summary>
    /// The whole backward recurrence (gpu policy), one launch, steps in reverse processing order; sequences and
    /// hidden units owned as in <see cref="ForwardSequenceKernel"/>. dh[u] is dy plus Σ_r dG_next[r]·W_hh[d, r, u]
    /// (r ascending over the 4H gate rows of the step processed after this one; consecutive u read consecutive
    /// addresses of row r); dc adds the carried f_next⊙dc_next. Writes the pre-activation gate gradients to
    /// <paramref name="dGates"/> and to shared memory (two buffers: step s writes one and reads the other, which
    /// the step before wrote), the carried dc⊙f to shared memory (each thread reads back only its own), one
    /// barrier per step. <paramref name="wHh"/>: W_hh [2, 4H, H].
    /// </summary>
    static void BackwardSequenceKernel(ArrayView<float> wHh, ArrayView<float> gates, ArrayView<float> cells, ArrayView<float> dy,
        ArrayView<float> dGates, int batch, int steps, int hidden)
    {
        var dgs = SharedMemory.Allocate<float>(2 * 4 * MaxGpuHidden);
        var dcs = SharedMemory.Allocate<float>(MaxGpuHidden);
        int tid = Group.IdxX, threads = Group.DimX, groups = Grid.DimX;
        int h = hidden, g4 = 4 * h, sequences = 2 * batch;
        for (int q = Grid.IdxX; q < sequences; q += groups)
        {
            int d = q / batch, b = q % batch;
            for (int step = steps - 1; step >= 0; step--)
            {
                int t = d == 0 ? step : steps - 1 - step;
                int write = (step & 1) * 4 * MaxGpuHidden, read = 4 * MaxGpuHidden - write;
                bool hasNext = step < steps - 1;
                int gRow = (b * steps + t) * 2 * g4 + d * g4, yRow = (b * steps + t) * 2 * h + d * h;
                int cPrevRow = (b * steps + (d == 0 ? t - 1 : t + 1)) * 2 * h + d * h;
                for (int u = tid; u < h; u += threads)
                {
                    float dh = dy[yRow + u], dc = 0f;
                    if (hasNext)
                    {
                        int w = d * g4 * h + u;
                        for (int r = 0; r < g4; r++) dh += dgs[read + r] * wHh[w + r * h];
                        dc = dcs[u];
                    }
                    float i = gates[gRow + u], f = gates[gRow + h + u], gg = gates[gRow + 2 * h + u], o = gates[gRow + 3 * h + u];
                    float tc = Tanh(cells[yRow + u]);
                    float cPrev = 0f;
                    if (step > 0) cPrev = cells[cPrevRow + u];
                    dc += dh * o * (1f - tc * tc);
                    float di = dc * gg * i * (1f - i);
                    float df = dc * cPrev * f * (1f - f);
                    float dg = dc * i * (1f - gg * gg);
                    float dout = dh * tc * o * (1f - o);
                    dGates[gRow + u] = di;
                    dGates[gRow + h + u] = df;
                    dGates[gRow + 2 * h + u] = dg;
                    dGates[gRow + 3 * h + u] = dout;
                    dgs[write + u] = di;
                    dgs[write + h + u] = df;
                    dgs[write + 2 * h + u] = dg;
                    dgs[write + 3 * h + u] = dout;
                    dcs[u] = dc * f;
                }
                Group.Barrier();
            }
        }
    }

    /// <summary>
    /// Host policy: the gates, cell and hidden update of one step, both directions, in parallel over the
    /// (direction, batch) rows. The four pre-activations (input projection + recurrent products) get both biases
    /// and become the activations i, f, g, o in place (the backward reads them); c = f⊙c_prev + i⊙g, y = o⊙tanh(c).
    /// </summary>
    static unsafe void HostForwardStep(float* biases, float* gates, float* cells, float* y, LstmStep p)
    {
        int h = p.Hidden, g4 = 4 * h, bHh = 2 * g4;
        nint pb = (nint)biases, pg = (nint)gates, pc = (nint)cells, py = (nint)y;
        HostMemory.For(2 * p.Batch, 30L * h, (first, end) =>
        {
            for (int row = first; row < end; row++)
            {
                int d = row / p.Batch, b = row % p.Batch;
                int t = d == 0 ? p.Step : p.Steps - 1 - p.Step, tPrev = d == 0 ? t - 1 : t + 1;
                float* gr = (float*)pg + ((long)(b * p.Steps + t) * 2 * g4 + d * g4);
                float* bias = (float*)pb + d * g4;
                long yRow = (long)(b * p.Steps + t) * 2 * h + d * h;
                float* cPrev = p.Step > 0 ? (float*)pc + ((long)(b * p.Steps + tPrev) * 2 * h + d * h) : null;
                for (int j = 0; j < h; j++)
                {
                    float i = Sigmoid(gr[j] + bias[j] + bias[bHh + j]);
                    float f = Sigmoid(gr[h + j] + bias[h + j] + bias[bHh + h + j]);
                    float gg = XMath.Tanh(gr[2 * h + j] + bias[2 * h + j] + bias[bHh + 2 * h + j]);
                    float o = Sigmoid(gr[3 * h + j] + bias[3 * h + j] + bias[bHh + 3 * h + j]);
                    float c = f * (cPrev != null ? cPrev[j] : 0f) + i * gg;
                    gr[j] = i;
                    gr[h + j] = f;
                    gr[2 * h + j] = gg;
                    gr[3 * h + j] = o;
                    ((float*)pc)[yRow + j] = c;
                    ((float*)py)[yRow + j] = o * XMath.Tanh(c);
                }
            }
        });
    }

    /// <summary>
    /// Host policy: the elementwise part of one backward step, both directions, in parallel over the (direction,
    /// batch) rows. dh is dy plus <paramref name="dHidden"/> [2, B, H], the recurrent gradient dG_next·W_hh that the
    /// host GEMMs computed from the step processed after this one; dc adds the carried f_next⊙dc_next. Writes the
    /// pre-activation gate gradients and carries dc⊙f to the next step in <paramref name="dCell"/> [2, B, H].
    /// </summary>
    static unsafe void HostBackwardStep(float* gates, float* cells, float* dy, float* dGates, float* dCell, float* dHidden, LstmStep p)
    {
        int h = p.Hidden, g4 = 4 * h;
        bool hasNext = p.Step < p.Steps - 1;
        nint pg = (nint)gates, pc = (nint)cells, pdy = (nint)dy, pdg = (nint)dGates, pdc = (nint)dCell, pdh = (nint)dHidden;
        HostMemory.For(2 * p.Batch, 30L * h, (first, end) =>
        {
            for (int row = first; row < end; row++)
            {
                int d = row / p.Batch, b = row % p.Batch;
                int t = d == 0 ? p.Step : p.Steps - 1 - p.Step;
                long yRow = (long)(b * p.Steps + t) * 2 * h + d * h, gRow = (long)(b * p.Steps + t) * 2 * g4 + d * g4;
                float* gr = (float*)pg + gRow, dgr = (float*)pdg + gRow, carried = (float*)pdc + (long)row * h;
                for (int j = 0; j < h; j++)
                {
                    float dh = ((float*)pdy)[yRow + j], dc = 0f;
                    if (hasNext)
                    {
                        dh += ((float*)pdh)[(long)row * h + j];
                        dc = carried[j];
                    }
                    float i = gr[j], f = gr[h + j], gg = gr[2 * h + j], o = gr[3 * h + j];
                    float tc = XMath.Tanh(((float*)pc)[yRow + j]);
                    float cPrev = p.Step > 0 ? ((float*)pc)[yRow + j + (d == 0 ? -2 * h : 2 * h)] : 0f;
                    dc += dh * o * (1f - tc * tc);
                    dgr[j] = dc * gg * i * (1f - i);
                    dgr[h + j] = dc * cPrev * f * (1f - f);
                    dgr[2 * h + j] = dc * i * (1f - gg * gg);
                    dgr[3 * h + j] = dh * tc * o * (1f - o);
                    carried[j] = dc * f;
                }
            }
        });
    }
}

/// <summary>One LSTM layer's weights packed for the host GEMMs of <see cref="Lstm.Infer"/>: W_ih of both
/// directions ([8H, In] as B = W_ihᵀ) and each direction's W_hh (as W_hhᵀ).</summary>
public sealed record LstmInferenceWeights(PackedOperand Input, PackedOperand[] Recurrent);
