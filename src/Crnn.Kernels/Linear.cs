using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// A fully connected layer y [rows, out] = x [rows, in] · Wᵀ + b, with W [out, in] in PyTorch's layout and
/// b [out]: the CTC head (192 → classes over every time step). Built on <see cref="Gemm"/> and <see cref="Bias"/>.
/// </summary>
public sealed class Linear
{
    readonly Device _device;
    readonly Gemm _gemm;
    readonly Bias _bias;

    public Linear(Device device)
    {
        _device = device;
        _gemm = new Gemm(device);
        _bias = new Bias(device);
    }

    /// <summary>y [rows, out] = x [rows, in] · Wᵀ + b (overwrites y). <paramref name="packedWeight"/> (host policy,
    /// <see cref="PackedOperand.RowsAsTransposedB"/> of W): Wᵀ packed in advance, not again per call.</summary>
    public void Forward(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias, ArrayView<float> y,
        int rows, int inFeatures, int outFeatures, PackedOperand? packedWeight = null)
    {
        CheckShape(rows, inFeatures, outFeatures);
        Expect(x, (long)rows * inFeatures, "x");
        Expect(weight, (long)outFeatures * inFeatures, "weight");
        Expect(bias, outFeatures, "bias");
        Expect(y, (long)rows * outFeatures, "y");
        var shape = GemmShape.RowMajor(rows, outFeatures, inFeatures, transB: true);
        if (packedWeight != null && _device.UsesHost)
        {
            HostMemory.Enter(_device, "the linear layer");
            unsafe { HostGemm.Run(HostMemory.Pointer(x), HostMemory.Pointer(weight), HostMemory.Pointer(y), shape, default, packed: packedWeight); }
        }
        else _gemm.Run(x, weight, y, shape);
        _bias.Add(y, bias, rows, outFeatures, 1);
    }

    /// <summary>dx = dy · W, dW = dyᵀ · x, db = Σ over rows of dy (all three overwritten).</summary>
    public void Backward(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> dy,
        ArrayView<float> dx, ArrayView<float> dWeight, ArrayView<float> dBias, int rows, int inFeatures, int outFeatures)
    {
        CheckShape(rows, inFeatures, outFeatures);
        Expect(x, (long)rows * inFeatures, "x");
        Expect(weight, (long)outFeatures * inFeatures, "weight");
        Expect(dy, (long)rows * outFeatures, "dy");
        Expect(dx, (long)rows * inFeatures, "dx");
        Expect(dWeight, (long)outFeatures * inFeatures, "dWeight");
        Expect(dBias, outFeatures, "dBias");
        _gemm.Run(new GemmProduct(dy, x, dWeight, GemmShape.RowMajor(outFeatures, inFeatures, rows, transA: true)),
            new GemmProduct(dy, weight, dx, GemmShape.RowMajor(rows, inFeatures, outFeatures)));
        _bias.Gradient(dy, dBias, rows, outFeatures, 1);
    }

    static void CheckShape(int rows, int inFeatures, int outFeatures)
    {
        if (rows < 1 || inFeatures < 1 || outFeatures < 1)
            throw new ArgumentException($"bad linear shape: {rows} rows, {inFeatures} → {outFeatures} features (all must be ≥ 1)");
        if ((long)rows * Math.Max(inFeatures, outFeatures) > int.MaxValue || (long)inFeatures * outFeatures > int.MaxValue)
            throw new ArgumentException($"linear shape {rows}×{inFeatures}→{outFeatures} exceeds the 2^31 element limit");
    }

    static void Expect(ArrayView<float> view, long length, string name)
    {
        if (view.Length != length) throw new ArgumentException($"linear {name} has {view.Length} elements, expected {length}");
    }
}
