using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// BatchNorm in evaluation mode as inference applies it after a convolution, per channel: Mean μ, Scale
/// s = γ/√(σ² + ε), Shift β and Offset β − μ·s (computed in float64), each a [channels] view. Host code computes
/// x·s + Offset in one fused multiply-add (an imported PaddleOCR model's logits ≤ 6.6e-5 from float64;
/// subtracting first there: 1.4e-4); GPU kernels (x − μ)·s + β, as the BatchNorm kernel did (under PoCL
/// 2.2e-4; multiplying first without FMA 1.05e-4, so that form may be the better one there).
/// </summary>
public readonly record struct ChannelNorm(ArrayView<float> Mean, ArrayView<float> Scale, ArrayView<float> Shift, ArrayView<float> Offset)
{
    internal void Check(int channels, string what)
    {
        if (Mean.Length != channels || Scale.Length != channels || Shift.Length != channels || Offset.Length != channels)
            throw new ArgumentException($"BatchNorm statistics have {Mean.Length}/{Scale.Length}/{Shift.Length}/{Offset.Length} elements, {what} has {channels} channels");
    }

    /// <summary>A bias alone (squeeze-excite's convolutions): no mean or scale.</summary>
    internal static ChannelNorm Bias(ArrayView<float> bias) => new(default, default, bias, bias);
}

/// <summary>
/// Per-channel bias over a tensor laid out [outer, channels, inner]: NCHW activations (outer = batch,
/// inner = H·W) and row-major [rows, features] matrices (outer = rows, inner = 1) alike; optionally with an
/// activation, and in inference BatchNorm with the running statistics (<see cref="Normalize"/>).
/// </summary>
public sealed class Bias
{
    /// <summary>Positions (outer × inner) per partial sum of the gradient: a constant, so the sums' order, and their
    /// bits, depend on the shape alone, not on the grid.</summary>
    public const int PieceLength = 256;

    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int> _affine;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int, int> _partialSums;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int> _sumPieces;

    public Bias(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _affine = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>(AffineKernel);
        _partialSums = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int, int>(PartialSumsKernel);
        _sumPieces = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int>(SumPiecesKernel);
    }

    /// <summary>y[o, c, i] = act(y[o, c, i] + bias[c]) (no activation: the plain bias add).</summary>
    public void Add(ArrayView<float> y, ArrayView<float> bias, int outer, int channels, int inner, Activation act = Activation.None)
    {
        Check(y, bias, outer, channels, inner);
        Affine(y, ChannelNorm.Bias(bias), outer, channels, inner, act);
    }

    /// <summary>y[o, c, i] = act(BatchNorm(y[o, c, i])) (<see cref="ChannelNorm"/>): BatchNorm in evaluation mode and
    /// the activation after a convolution that has no epilogue of its own.</summary>
    public void Normalize(ArrayView<float> y, ChannelNorm norm, int outer, int channels, int inner, Activation act)
    {
        Check(y, norm.Shift, outer, channels, inner);
        norm.Check(channels, "the tensor");
        Affine(y, norm, outer, channels, inner, act);
    }

    void Affine(ArrayView<float> y, ChannelNorm norm, int outer, int channels, int inner, Activation act)
    {
        long n = (long)outer * channels * inner;
        if (n == 0) return;
        bool scaled = norm.Scale.Length > 0;
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "the bias");
            unsafe
            {
                HostElementwise.ScaleShift(HostMemory.Pointer(y), HostMemory.Pointer(norm.Scale), HostMemory.Pointer(norm.Offset),
                    outer, channels, inner, (int)act);
            }
        }
        // A bias alone: the kernel gets the shift in place of mean and scale (valid views it does not read).
        else if (_device.Launch(nameof(AffineKernel), n, 3.0 * n, 8.0 * n, out var grid))
            _affine(grid, y, scaled ? norm.Mean : norm.Shift, scaled ? norm.Scale : norm.Shift, norm.Shift, outer, channels, inner, (int)act, scaled ? 1 : 0);
    }

    /// <summary>dbias[c] = Σ over o and i of dy[o, c, i] (overwrites dbias), summed in a fixed order: partial sums
    /// over pieces of <see cref="PieceLength"/> positions, one thread each (pieces × channels of parallel work
    /// rather than one thread per channel over up to 6 400 rows), then the pieces in order.</summary>
    public void Gradient(ArrayView<float> dy, ArrayView<float> dbias, int outer, int channels, int inner)
    {
        Check(dy, dbias, outer, channels, inner);
        long n = (long)outer * channels * inner;
        if (n == 0) { Fill.Zero(_device, dbias); return; }
        int pieces = (int)(((long)outer * inner + PieceLength - 1) / PieceLength);
        // One piece: the partial sums are the result.
        var partials = pieces == 1 ? dbias : _device.Workspace("bias.partials", (long)pieces * channels);
        long units = (long)pieces * channels;
        if (_device.Launch(nameof(PartialSumsKernel), units, n, 4.0 * n, out var grid))
            _partialSums(grid, dy, partials, outer, channels, inner, pieces);
        if (pieces > 1 && _device.Launch(nameof(SumPiecesKernel), channels, units, 4.0 * (units + channels), out var sumGrid))
            _sumPieces(sumGrid, partials, dbias, channels, pieces);
    }

    static void Check(ArrayView<float> y, ArrayView<float> bias, int outer, int channels, int inner)
    {
        if (outer < 0 || channels < 0 || inner < 0) throw new ArgumentException($"negative bias shape [{outer},{channels},{inner}]");
        if (y.Length != (long)outer * channels * inner) throw new ArgumentException($"tensor of {y.Length} elements is not [{outer},{channels},{inner}]");
        if (bias.Length != channels) throw new ArgumentException($"bias has {bias.Length} elements, expected {channels}");
    }

    static void AffineKernel(ArrayView<float> y, ArrayView<float> mean, ArrayView<float> scale, ArrayView<float> shift,
        int outer, int channels, int inner, int act, int scaled)
    {
        int n = outer * channels * inner, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            int c = i / inner % channels;
            y[i] = Activations.Apply(act, scaled != 0 ? (y[i] - mean[c]) * scale[c] + shift[c] : y[i] + shift[c]);
        }
    }

    /// <summary>partials[p, c] = Σ of dy[o, c, i] over positions j = o·inner + i in piece p, in order.</summary>
    static void PartialSumsKernel(ArrayView<float> dy, ArrayView<float> partials, int outer, int channels, int inner, int pieces)
    {
        int units = pieces * channels, positions = outer * inner, stride = Grid.DimX * Group.DimX;
        for (int u = Grid.GlobalIndex.X; u < units; u += stride)
        {
            int c = u % channels, first = u / channels * PieceLength;
            int end = first + PieceLength < positions ? first + PieceLength : positions;
            int o = first / inner, i = first % inner;
            float sum = 0f;
            for (int j = first; j < end; j++)
            {
                sum += dy[(o * channels + c) * inner + i];
                if (++i == inner) { i = 0; o++; }
            }
            partials[u] = sum;
        }
    }

    /// <summary>dbias[c] = Σ_p partials[p, c], p in order.</summary>
    static void SumPiecesKernel(ArrayView<float> partials, ArrayView<float> dbias, int channels, int pieces)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int c = Grid.GlobalIndex.X; c < channels; c += stride)
        {
            float sum = 0f;
            for (int p = 0; p < pieces; p++) sum += partials[p * channels + c];
            dbias[c] = sum;
        }
    }
}
