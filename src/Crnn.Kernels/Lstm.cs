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
/// Rows of activations are r = b·Steps + t. Forward saves <see cref="SavedLength"/> floats for backward:
/// the activated gates [Batch, Steps, 2, 4H] (i, f, g, o per direction) followed by the cells
/// [Batch, Steps, 2H]. Backward needs <see cref="ScratchLength"/> floats of scratch: the pre-activation gate
/// gradients [Batch, Steps, 2, 4H] followed by the cell gradient carried between steps [2, Batch, H] and the
/// recurrent part of the hidden gradient [2, Batch, H] (used where the recurrent products run as GEMMs).
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
    public int SavedLength => GatesLength + CellsLength;
    public int ScratchLength => GatesLength + 4 * Batch * Hidden;
}

/// <summary>Integers of one recurrent step, passed to the step kernels as one argument.</summary>
public struct LstmStep
{
    public int Batch, Steps, Hidden;
    /// <summary>Position in processing order: the forward direction is at t = Step, the reverse at t = Steps−1−Step.</summary>
    public int Step;
    /// <summary>1 where the recurrent products already ran as GEMMs (host policy), 0 where the kernel does them.</summary>
    public int GemmRecurrence;
}

/// <summary>
/// A bidirectional LSTM layer (gates i, f, g, o; c' = f⊙c + i⊙g, h' = o⊙tanh(c'); zero initial state; the
/// reverse direction runs t = T−1…0). The input projection of all steps and both directions is one GEMM;
/// then each step is one fused launch for both directions (recurrent product h·W_hhᵀ, biases, gate
/// nonlinearities, cell and hidden update). Backward runs the steps in reverse the same way and ends with
/// GEMMs and fixed-order sums for dx and the weight gradients. Under the host policy, where the host GEMM
/// is an order of magnitude faster than scalar kernel code, each step's recurrent products run as GEMMs
/// (one per direction) and the step kernels keep only the elementwise work.
/// </summary>
public sealed class Lstm
{
    readonly Device _device;
    readonly Gemm _gemm;
    readonly Bias _bias;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LstmStep> _forwardStep;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LstmStep> _backwardStep;
    readonly bool _gemmRecurrence;

    public Lstm(Device device)
    {
        _device = device;
        _gemm = new Gemm(device);
        _bias = new Bias(device);
        // Under the host policy the recurrent products run as (host) GEMMs; GPU step kernels do them inline.
        _gemmRecurrence = device.UsesHost;
        var acc = device.Accelerator;
        _forwardStep = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LstmStep>(ForwardStepKernel);
        _backwardStep = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, LstmStep>(BackwardStepKernel);
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
        RunForwardSteps(s, parameters, y, gates, cells);
    }

    /// <summary>
    /// The recurrence, one launch per step for both directions. Kept in one place so a persistent
    /// whole-sequence kernel can replace it.
    /// </summary>
    void RunForwardSteps(LstmShape s, ArrayView<float> parameters, ArrayView<float> y, ArrayView<float> gates, ArrayView<float> cells)
    {
        var recurrent = parameters.SubView(s.WeightHhOffset, s.ParameterCount - s.WeightHhOffset);
        var config = _device.GridStride(2L * s.Batch * s.Hidden);
        for (int step = 0; step < s.Steps; step++)
        {
            if (_gemmRecurrence && step > 0)
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
            if (_device.Launch(nameof(ForwardStepKernel), config, 2L * s.Batch * s.Hidden, StepFlops(s), StepBytes(s)))
                _forwardStep(config, recurrent, gates, cells, y, StepOf(s, step));
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
        var dCell = scratch.SubView(s.GatesLength, 2 * s.Batch * s.Hidden);
        var dHidden = scratch.SubView(s.GatesLength + 2 * s.Batch * s.Hidden, 2 * s.Batch * s.Hidden);
        int rows = s.Batch * s.Steps, g2 = 2 * s.Gates;

        RunBackwardSteps(s, parameters, dy, gates, cells, dGates, dCell, dHidden);

        var wIh = parameters.SubView(s.WeightIhOffset, g2 * s.Input);
        // dx [rows, In] = dG [rows, 8H] · W_ih [8H, In]
        _gemm.Run(dGates, wIh, dx, GemmShape.RowMajor(rows, s.Input, g2));
        // dW_ih [8H, In] = dGᵀ · x
        _gemm.Run(dGates, x, dParameters.SubView(s.WeightIhOffset, g2 * s.Input), GemmShape.RowMajor(g2, s.Input, rows, transA: true));
        RecurrentWeightGradient(s, y, dGates, dParameters);
        // Both biases enter every gate pre-activation unchanged: each gradient is the column sum of dG.
        _bias.Gradient(dGates, dParameters.SubView(s.BiasIhOffset, g2), rows, g2, 1);
        _bias.Gradient(dGates, dParameters.SubView(s.BiasHhOffset, g2), rows, g2, 1);
    }

    /// <summary>The recurrence backward, one launch per step for both directions, latest step first.</summary>
    void RunBackwardSteps(LstmShape s, ArrayView<float> parameters, ArrayView<float> dy, ArrayView<float> gates,
        ArrayView<float> cells, ArrayView<float> dGates, ArrayView<float> dCell, ArrayView<float> dHidden)
    {
        var recurrent = parameters.SubView(s.WeightHhOffset, 2 * s.Gates * s.Hidden);
        var config = _device.GridStride(2L * s.Batch * s.Hidden);
        int bh = s.Batch * s.Hidden;
        for (int step = s.Steps - 1; step >= 0; step--)
        {
            if (_gemmRecurrence && step < s.Steps - 1)
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
            if (_device.Launch(nameof(BackwardStepKernel), config, 2L * s.Batch * s.Hidden, StepFlops(s), StepBytes(s)))
                _backwardStep(config, recurrent, gates, cells, dy, dGates, dCell, dHidden, StepOf(s, step));
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
        for (int d = 0; d < 2; d++)
        {
            var dW = dParameters.SubView(s.WeightHh(d), g * h);
            if (s.Steps == 1)
            {
                // A single step only ever sees the zero initial state.
                Fill.Zero(_device, dW);
                continue;
            }
            var shape = new GemmShape
            {
                M = g, N = h, K = s.Steps - 1, Batch = 1,
                AM = 1, AK = rowG, BK = rowY, BN = 1, Ldc = h, Alpha = 1f,
            }.Batched(s.Batch, s.Steps * rowG, s.Steps * rowY, 0, sumBatches: true);
            // Forward: dG rows t = 1…T−1 pair with y rows t−1. Reverse: dG rows t = 0…T−2 with y rows t+1.
            int offG = d == 0 ? rowG : g, offY = d == 0 ? 0 : rowY + h;
            _gemm.Run(dGates.SubView(offG, dGates.Length - offG), y.SubView(offY, y.Length - offY), dW, shape);
        }
    }

    /// <summary>One step of both directions: the recurrent products (unless they ran as GEMMs) and ~30 for the cell.</summary>
    double StepFlops(LstmShape s) => 2.0 * s.Batch * (_gemmRecurrence ? 30.0 * s.Hidden : 2.0 * s.Gates * s.Hidden + 30.0 * s.Hidden);

    double StepBytes(LstmShape s) => 4.0 * 2 * s.Batch * (2.0 * s.Gates + 3.0 * s.Hidden) + (_gemmRecurrence ? 0 : 4.0 * 2 * s.Gates * s.Hidden);

    LstmStep StepOf(LstmShape s, int step) =>
        new() { Batch = s.Batch, Steps = s.Steps, Hidden = s.Hidden, Step = step, GemmRecurrence = _gemmRecurrence ? 1 : 0 };

    static void Validate(LstmShape s)
    {
        if (s.Batch < 1 || s.Steps < 1 || s.Input < 1 || s.Hidden < 1)
            throw new ArgumentException($"bad LSTM shape: batch {s.Batch}, steps {s.Steps}, input {s.Input}, hidden {s.Hidden} (all must be ≥ 1)");
        if ((long)s.Batch * s.Steps * 8 * Math.Max(s.Hidden, s.Input) > int.MaxValue)
            throw new ArgumentException($"LSTM shape {s} exceeds the 2^31 element limit");
    }

    static void Expect(ArrayView<float> view, int length, string name)
    {
        if (view.Length != length) throw new ArgumentException($"LSTM {name} has {view.Length} elements, expected {length}");
    }

    static float Sigmoid(float x) => 1f / (1f + XMath.Exp(-x));

    /// <summary>
    /// One thread per (direction, batch, hidden unit): the four recurrent dot products with its W_hh rows,
    /// plus the input projection and both biases, then the gates, cell and hidden state (with
    /// <see cref="LstmStep.GemmRecurrence"/> the recurrent products are already in the gates). Gates are overwritten
    /// in place with their activated values (each thread owns its four), which backward reads.
    /// <paramref name="recurrent"/> starts at W_hh: [2, 4H, H] then b_ih [2, 4H] then b_hh [2, 4H].
    /// </summary>
    static void ForwardStepKernel(ArrayView<float> recurrent, ArrayView<float> gates, ArrayView<float> cells, ArrayView<float> y, LstmStep p)
    {
        int h = p.Hidden, g4 = 4 * h, n = 2 * p.Batch * h;
        int biasIh = 2 * g4 * h, biasHh = biasIh + 2 * g4;
        int stride = Grid.DimX * Group.DimX;
        for (int idx = Grid.GlobalIndex.X; idx < n; idx += stride)
        {
            int j = idx % h, b = idx / h % p.Batch, d = idx / (h * p.Batch);
            int t = d == 0 ? p.Step : p.Steps - 1 - p.Step;
            int tPrev = d == 0 ? t - 1 : t + 1;
            int gRow = (b * p.Steps + t) * 2 * g4 + d * g4;
            int w = d * g4 * h + j * h, bias = d * g4 + j;
            float ai = gates[gRow + j] + recurrent[biasIh + bias] + recurrent[biasHh + bias];
            float af = gates[gRow + h + j] + recurrent[biasIh + bias + h] + recurrent[biasHh + bias + h];
            float ag = gates[gRow + 2 * h + j] + recurrent[biasIh + bias + 2 * h] + recurrent[biasHh + bias + 2 * h];
            float ao = gates[gRow + 3 * h + j] + recurrent[biasIh + bias + 3 * h] + recurrent[biasHh + bias + 3 * h];
            float cPrev = 0f;
            if (p.Step > 0)
            {
                int hRow = (b * p.Steps + tPrev) * 2 * h + d * h;
                if (p.GemmRecurrence == 0)
                {
                    for (int m = 0; m < h; m++)
                    {
                        float hm = y[hRow + m];
                        ai += recurrent[w + m] * hm;
                        af += recurrent[w + h * h + m] * hm;
                        ag += recurrent[w + 2 * h * h + m] * hm;
                        ao += recurrent[w + 3 * h * h + m] * hm;
                    }
                }
                cPrev = cells[hRow + j];
            }
            float i = Sigmoid(ai), f = Sigmoid(af), gg = XMath.Tanh(ag), o = Sigmoid(ao);
            float c = f * cPrev + i * gg;
            gates[gRow + j] = i;
            gates[gRow + h + j] = f;
            gates[gRow + 2 * h + j] = gg;
            gates[gRow + 3 * h + j] = o;
            int yIdx = (b * p.Steps + t) * 2 * h + d * h + j;
            cells[yIdx] = c;
            y[yIdx] = o * XMath.Tanh(c);
        }
    }

    /// <summary>
    /// One thread per (direction, batch, hidden unit), steps in reverse processing order. dh is dy plus the
    /// recurrent gradient Σ_r dG_next[r]·W_hh[r, j] from the step processed after this one (column j of W_hh,
    /// a fixed-order sum); dc adds the carried f_next⊙dc_next. Writes the pre-activation gate gradients and
    /// carries dc⊙f to the next launch in <paramref name="dCell"/> [2, B, H] (each thread owns its element).
    /// With <see cref="LstmStep.GemmRecurrence"/> the recurrent sum was computed by a GEMM into <paramref name="dHidden"/> [2, B, H].
    /// </summary>
    static void BackwardStepKernel(ArrayView<float> wHh, ArrayView<float> gates, ArrayView<float> cells, ArrayView<float> dy,
        ArrayView<float> dGates, ArrayView<float> dCell, ArrayView<float> dHidden, LstmStep p)
    {
        int h = p.Hidden, g4 = 4 * h, n = 2 * p.Batch * h;
        int stride = Grid.DimX * Group.DimX;
        bool hasNext = p.Step < p.Steps - 1;
        for (int idx = Grid.GlobalIndex.X; idx < n; idx += stride)
        {
            int j = idx % h, b = idx / h % p.Batch, d = idx / (h * p.Batch);
            int t = d == 0 ? p.Step : p.Steps - 1 - p.Step;
            int yIdx = (b * p.Steps + t) * 2 * h + d * h + j;
            float dh = dy[yIdx], dc = 0f;
            if (hasNext)
            {
                int tNext = d == 0 ? t + 1 : t - 1;
                int nextRow = (b * p.Steps + tNext) * 2 * g4 + d * g4;
                int w = d * g4 * h + j;
                if (p.GemmRecurrence != 0) dh += dHidden[idx];
                else for (int r = 0; r < g4; r++) dh += dGates[nextRow + r] * wHh[w + r * h];
                dc = dCell[idx];
            }
            int gRow = (b * p.Steps + t) * 2 * g4 + d * g4;
            float i = gates[gRow + j], f = gates[gRow + h + j], gg = gates[gRow + 2 * h + j], o = gates[gRow + 3 * h + j];
            float tc = XMath.Tanh(cells[yIdx]);
            float cPrev = 0f;
            if (p.Step > 0) cPrev = cells[yIdx + (d == 0 ? -2 * h : 2 * h)];
            dc += dh * o * (1f - tc * tc);
            dGates[gRow + j] = dc * gg * i * (1f - i);
            dGates[gRow + h + j] = dc * cPrev * f * (1f - f);
            dGates[gRow + 2 * h + j] = dc * i * (1f - gg * gg);
            dGates[gRow + 3 * h + j] = dh * tc * o * (1f - o);
            dCell[idx] = dc * f;
        }
    }
}
