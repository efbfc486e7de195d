using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// Per-channel bias over a tensor laid out [outer, channels, inner]: NCHW activations (outer = batch,
/// inner = H·W) and row-major [rows, features] matrices (outer = rows, inner = 1) alike.
/// </summary>
public sealed class Bias
{
    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int> _add, _gradient;

    public Bias(Device device)
    {
        _device = device;
        _add = device.Accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(AddKernel);
        _gradient = device.Accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(GradientKernel);
    }

    /// <summary>y[o, c, i] += bias[c].</summary>
    public void Add(ArrayView<float> y, ArrayView<float> bias, int outer, int channels, int inner)
    {
        Check(y, bias, outer, channels, inner);
        long n = (long)outer * channels * inner;
        if (_device.Launch(nameof(AddKernel), _device.GridStride(n), n, n, 8.0 * n))
            _add(_device.GridStride(n), y, bias, outer, channels, inner);
    }

    /// <summary>dbias[c] = Σ over o and i of dy[o, c, i] (overwrites dbias), summed in a fixed order.</summary>
    public void Gradient(ArrayView<float> dy, ArrayView<float> dbias, int outer, int channels, int inner)
    {
        Check(dy, dbias, outer, channels, inner);
        long n = (long)outer * channels * inner;
        if (_device.Launch(nameof(GradientKernel), _device.GridStride(channels), channels, n, 4.0 * n))
            _gradient(_device.GridStride(channels), dy, dbias, outer, channels, inner);
    }

    static void Check(ArrayView<float> y, ArrayView<float> bias, int outer, int channels, int inner)
    {
        if (outer < 0 || channels < 0 || inner < 0) throw new ArgumentException($"negative bias shape [{outer},{channels},{inner}]");
        if (y.Length != (long)outer * channels * inner) throw new ArgumentException($"tensor of {y.Length} elements is not [{outer},{channels},{inner}]");
        if (bias.Length != channels) throw new ArgumentException($"bias has {bias.Length} elements, expected {channels}");
    }

    static void AddKernel(ArrayView<float> y, ArrayView<float> bias, int outer, int channels, int inner)
    {
        int n = outer * channels * inner, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride) y[i] += bias[i / inner % channels];
    }

    /// <summary>One thread per channel: a sequential, fixed-order sum (biases are few and small).</summary>
    static void GradientKernel(ArrayView<float> dy, ArrayView<float> dbias, int outer, int channels, int inner)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int c = Grid.GlobalIndex.X; c < channels; c += stride)
        {
            float sum = 0f;
            for (int o = 0; o < outer; o++)
            {
                int p = (o * channels + c) * inner;
                for (int i = 0; i < inner; i++) sum += dy[p + i];
            }
            dbias[c] = sum;
        }
    }
}
