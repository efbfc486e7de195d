using ILGPU;

namespace Crnn.Kernels;

/// <summary>Shape of a 1×1 convolution: input [Batch, InChannels, Positions], output [Batch, OutChannels,
/// Positions] (Positions = H·W of NCHW), weights [OutChannels, InChannels], optional bias [OutChannels].</summary>
public readonly record struct PointwiseShape(int Batch, int InChannels, int OutChannels, int Positions)
{
    public int InputLength => Batch * InChannels * Positions;
    public int OutputLength => Batch * OutChannels * Positions;
    public int WeightLength => OutChannels * InChannels;

    /// <summary>Multiply-adds of the forward product.</summary>
    public long MultiplyAdds => (long)Batch * OutChannels * InChannels * Positions;
}

/// <summary>
/// 1×1 convolution (expand, linear and SE layers, conv2) as matrix products on <see cref="Gemm"/>: per image
/// y_b = W·x_b, with the weights shared across the batch (batch stride 0), bias through <see cref="Bias"/>.
/// Inputs with one position (SE on pooled [B, C, 1, 1]) run as a single product over the batch instead.
/// </summary>
public sealed class PointwiseConv
{
    readonly Device _device;
    readonly Gemm _gemm;
    readonly Bias _bias;

    public PointwiseConv(Device device)
    {
        _device = device;
        _gemm = new Gemm(device);
        _bias = new Bias(device);
    }

    /// <summary>y = W·x (overwrites y).</summary>
    public void Forward(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, PointwiseShape s)
    {
        Check(s, (x, s.InputLength, "x"), (w, s.WeightLength, "w"), (y, s.OutputLength, "y"));
        if (s.Positions == 1) // y[B,out] = x[B,in]·Wᵀ
            _gemm.Run(x, w, y, GemmShape.RowMajor(s.Batch, s.OutChannels, s.InChannels, transB: true));
        else
            _gemm.Run(w, x, y, PerImage(s));
    }

    /// <summary>Per image, y_b [out, P] = W [out, in] · x_b [in, P].</summary>
    static GemmShape PerImage(PointwiseShape s) =>
        GemmShape.RowMajor(s.OutChannels, s.Positions, s.InChannels).Batched(s.Batch, 0, s.InChannels * s.Positions, s.OutChannels * s.Positions);

    /// <summary>y = act(W·x + bias) (overwrites y): squeeze-excite's 1×1 convolutions.</summary>
    public void Forward(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, PointwiseShape s, Activation act = Activation.None)
    {
        Check(s, (x, s.InputLength, "x"), (w, s.WeightLength, "w"), (y, s.OutputLength, "y"), (bias, s.OutChannels, "bias"));
        if (!Epilogue(x, w, ChannelNorm.Bias(bias), y, s, act, null, default))
        {
            Forward(x, w, y, s);
            _bias.Add(y, bias, s.Batch, s.OutChannels, s.Positions, act);
        }
    }

    /// <summary>Inference: y = act(BatchNorm(W·x)) (<see cref="ChannelNorm"/>). On the host BatchNorm and the
    /// activation are the GEMM's epilogue and <paramref name="packedW"/>, W packed in advance
    /// (<see cref="PackedOperand.RowsAsA"/>), saves packing it per image; elsewhere one pass after the product.</summary>
    /// <returns>Whether <paramref name="residual"/> (y's shape; a residual shortcut) was added too: on the host it is one
    /// more step of the epilogue, elsewhere the caller adds it.</returns>
    /// <param name="inputScale">[B, in]: x's channel c of image b taken times inputScale[b, c] (squeeze-excite's gates,
    /// x·g rounded as a separate pass stores it); only where <see cref="ScalesInput"/> says so, with packed weights.</param>
    public bool Forward(ArrayView<float> x, ArrayView<float> w, ChannelNorm norm, ArrayView<float> y,
        PointwiseShape s, Activation act, PackedOperand? packedW = null, ArrayView<float> residual = default, ArrayView<float> inputScale = default)
    {
        Check(s, (x, s.InputLength, "x"), (w, s.WeightLength, "w"), (y, s.OutputLength, "y"));
        norm.Check(s.OutChannels, $"1×1 convolution {s}");
        if (residual.IsValid && residual.Length != s.OutputLength)
            throw new ArgumentException($"1×1 convolution {s}: residual has {residual.Length} values, the output {s.OutputLength}");
        if (inputScale.IsValid && (!ScalesInput(s) || packedW == null || inputScale.Length != (long)s.Batch * s.InChannels))
            throw new ArgumentException($"1×1 convolution {s}: an input scale needs [{s.Batch}, {s.InChannels}] values, packed weights and the host's AVX-512 path");
        if (Epilogue(x, w, norm, y, s, act, packedW, residual, inputScale)) return residual.IsValid;
        Forward(x, w, y, s);
        _bias.Normalize(y, norm, s.Batch, s.OutChannels, s.Positions, act);
        return false;
    }

    /// <summary>Whether <see cref="Forward(ArrayView{float}, ArrayView{float}, ChannelNorm, ArrayView{float}, PointwiseShape, Activation, PackedOperand?, ArrayView{float}, ArrayView{float})"/>
    /// can scale its input's channels as it reads them: the host policy's AVX-512 product.</summary>
    public bool ScalesInput(PointwiseShape s) => _device.UsesHost && s.Positions > 1 && HostGemm.ScalesB(PerImage(s));

    /// <summary>The host GEMM with BatchNorm (or a bias), the activation and the residual as its epilogue (host policy, several positions).</summary>
    bool Epilogue(ArrayView<float> x, ArrayView<float> w, ChannelNorm norm, ArrayView<float> y, PointwiseShape s, Activation act,
        PackedOperand? packedW, ArrayView<float> residual, ArrayView<float> inputScale = default)
    {
        if (!_device.UsesHost || s.Positions == 1) return false;
        HostMemory.Enter(_device, "GEMM");
        unsafe
        {
            var epilogue = new HostEpilogue(norm, act);
            float* py = HostMemory.Pointer(y);
            if (residual.IsValid) epilogue = epilogue.Plus(HostMemory.Pointer(residual), py);
            HostGemm.Run(HostMemory.Pointer(w), HostMemory.Pointer(x), py, PerImage(s), epilogue, packed: packedW, scaleB: HostMemory.Pointer(inputScale));
        }
        return true;
    }

    /// <summary>dx = Wᵀ·dy, overwriting dx, or added to it with <paramref name="accumulate"/> (a tensor that
    /// feeds two layers, e.g. the residual shortcut's input, sums both gradients).</summary>
    public void BackwardData(ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx, PointwiseShape s, bool accumulate = false)
    {
        Check(s, (dy, s.OutputLength, "dy"), (w, s.WeightLength, "w"), (dx, s.InputLength, "dx"));
        _gemm.Run(DataGradient(dy, w, dx, s, accumulate), default);
    }

    /// <summary>dw = Σ_b dy_b·x_bᵀ (overwrites dw), summed over the batch in a fixed order.</summary>
    public void BackwardWeight(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, PointwiseShape s)
    {
        Check(s, (dy, s.OutputLength, "dy"), (x, s.InputLength, "x"), (dw, s.WeightLength, "dw"));
        _gemm.Run(WeightGradient(dy, x, dw, s), default);
    }

    /// <summary><see cref="BackwardWeight"/> and <see cref="BackwardData"/> as one launch under the gpu policy (both read dy).</summary>
    public void Backward(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> w, ArrayView<float> dw, ArrayView<float> dx,
        PointwiseShape s, bool accumulate = false)
    {
        Check(s, (dy, s.OutputLength, "dy"), (x, s.InputLength, "x"), (w, s.WeightLength, "w"), (dw, s.WeightLength, "dw"), (dx, s.InputLength, "dx"));
        _gemm.Run(WeightGradient(dy, x, dw, s), DataGradient(dy, w, dx, s, accumulate));
    }

    static GemmProduct DataGradient(ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx, PointwiseShape s, bool accumulate)
    {
        int p = s.Positions;
        float beta = accumulate ? 1f : 0f;
        return p == 1 // dx[B,in] = dy[B,out]·W
            ? new(dy, w, dx, GemmShape.RowMajor(s.Batch, s.InChannels, s.OutChannels, beta: beta))
            : new(w, dy, dx, GemmShape.RowMajor(s.InChannels, p, s.OutChannels, transA: true, beta: beta)
                .Batched(s.Batch, 0, s.OutChannels * p, s.InChannels * p));
    }

    static GemmProduct WeightGradient(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, PointwiseShape s)
    {
        int p = s.Positions;
        return p == 1 // dw[out,in] = dy[B,out]ᵀ·x[B,in]
            ? new(dy, x, dw, GemmShape.RowMajor(s.OutChannels, s.InChannels, s.Batch, transA: true))
            : new(dy, x, dw, GemmShape.RowMajor(s.OutChannels, s.InChannels, p, transB: true)
                .Batched(s.Batch, s.OutChannels * p, s.InChannels * p, 0, sumBatches: true));
    }

    /// <summary>dbias[o] = Σ over images and positions of dy[b, o, ·] (overwrites dbias).</summary>
    public void BiasGradient(ArrayView<float> dy, ArrayView<float> dbias, PointwiseShape s)
    {
        Check(s, (dy, s.OutputLength, "dy"), (dbias, s.OutChannels, "dbias"));
        _bias.Gradient(dy, dbias, s.Batch, s.OutChannels, s.Positions);
    }

    static void Check(PointwiseShape s, params ReadOnlySpan<(ArrayView<float> View, int Expected, string Name)> operands)
    {
        if (s.Batch < 1 || s.InChannels < 1 || s.OutChannels < 1 || s.Positions < 1)
            throw new ArgumentException($"1×1 convolution sizes must be positive: {s}");
        if ((long)s.Batch * Math.Max(s.InChannels, s.OutChannels) * s.Positions > int.MaxValue)
            throw new ArgumentException($"1×1 convolution tensors exceed the 2^31 element limit: {s}");
        foreach (var (view, expected, name) in operands)
            if (view.Length != expected)
                throw new ArgumentException($"{name} has {view.Length} elements, expected {expected} for 1×1 convolution {s}");
    }
}
