using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// The squeeze-excite multiply: y[b, c, i] = x[b, c, i]·s[b, c] over NCHW activations with the spatial
/// positions flattened (x is [batch, channels, spatial], s is [batch, channels]).
/// </summary>
public sealed class ChannelScale
{
    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _scale;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _scaleGradient;

    public ChannelScale(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _scale = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(ScaleKernel);
        _scaleGradient = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(ScaleGradientKernel);
    }

    /// <summary>y = x·s broadcast over the spatial positions; y may be x.</summary>
    public void Forward(ArrayView<float> x, ArrayView<float> s, ArrayView<float> y, int batch, int channels, int spatial)
    {
        int n = Check(batch, channels, spatial, s, ("x", x), ("y", y));
        if (n == 0) return;
        if (Host()) unsafe { HostRows.Scale(HostMemory.Pointer(x), HostMemory.Pointer(s), HostMemory.Pointer(y), (int)s.Length, spatial); }
        else if (_device.Launch(nameof(ScaleKernel), n, n, 8.0 * n, out var grid)) _scale(grid, x, s, y, n, spatial);
    }

    /// <summary>Inference on the host (host policy only): the whole squeeze-excite block,
    /// y = x · hardsigmoid(W2·relu(W1·mean(x) + b1) + b2), image by image; see <see cref="HostRows.SqueezeExcite"/>.
    /// With <paramref name="gates"/> ([B, C]) the gates go there too; y may then be empty (x is not scaled: the next
    /// 1×1 convolution does it as it reads x, <see cref="PointwiseConv.ScalesInput"/>).</summary>
    public void SqueezeExcite(ArrayView<float> x, ArrayView<float> w1, ArrayView<float> b1, ArrayView<float> w2, ArrayView<float> b2,
        ArrayView<float> y, int batch, int channels, int squeeze, int spatial, ArrayView<float> gates = default)
    {
        if (!_device.UsesHost) throw new NotSupportedException("the fused squeeze-excite is host code (host kernel policy)");
        long n = (long)batch * channels * spatial;
        if (x.Length != n || (y.Length != n && !(y.Length == 0 && gates.IsValid)) || w1.Length != (long)squeeze * channels
            || w2.Length != (long)channels * squeeze || b1.Length != squeeze || b2.Length != channels
            || gates.IsValid && gates.Length != (long)batch * channels)
            throw new ArgumentException($"squeeze-excite operands do not match [{batch},{channels},{spatial}] squeezed to {squeeze}");
        HostMemory.Enter(_device, "squeeze-excite");
        unsafe
        {
            HostRows.SqueezeExcite(HostMemory.Pointer(x), HostMemory.Pointer(w1), HostMemory.Pointer(b1), HostMemory.Pointer(w2),
                HostMemory.Pointer(b2), HostMemory.Pointer(y), HostMemory.Pointer(gates), batch, channels, squeeze, spatial);
        }
    }

    /// <summary>
    /// dx = dy·s and ds[b, c] = Σ over positions of dy·x (a sequential, fixed-order sum per (b, c)).
    /// Overwrites dx and ds; dx may be dy (ds is computed first).
    /// </summary>
    public void Backward(ArrayView<float> x, ArrayView<float> s, ArrayView<float> dy, ArrayView<float> dx, ArrayView<float> ds,
        int batch, int channels, int spatial)
    {
        int n = Check(batch, channels, spatial, s, ("x", x), ("dy", dy), ("dx", dx));
        if (ds.Length != s.Length) throw new ArgumentException($"ds has {ds.Length} elements, expected {s.Length} (one per batch and channel)");
        if (s.Length == 0) return;
        if (Host())
        {
            unsafe
            {
                HostRows.ScaleGradient(HostMemory.Pointer(x), HostMemory.Pointer(dy), HostMemory.Pointer(ds), (int)s.Length, spatial);
                if (n > 0) HostRows.Scale(HostMemory.Pointer(dy), HostMemory.Pointer(s), HostMemory.Pointer(dx), (int)s.Length, spatial);
            }
            return;
        }
        if (_device.Launch(nameof(ScaleGradientKernel), s.Length, 2.0 * n, 8.0 * n, out var gradientGrid))
            _scaleGradient(gradientGrid, x, dy, ds, (int)s.Length, spatial);
        if (n > 0 && _device.Launch(nameof(ScaleKernel), n, n, 8.0 * n, out var grid)) _scale(grid, dy, s, dx, n, spatial);
    }

    /// <summary>Whether to run on the host (then after the kernels launched before have finished).</summary>
    bool Host()
    {
        if (!_device.UsesHost) return false;
        HostMemory.Enter(_device, "the channel scale");
        return true;
    }

    static int Check(int batch, int channels, int spatial, ArrayView<float> s, params (string Name, ArrayView<float> View)[] tensors)
    {
        if (batch < 0 || channels < 0 || spatial < 0) throw new ArgumentException($"negative channel-scale shape [{batch},{channels},{spatial}]");
        long n = (long)batch * channels * spatial;
        if (n > int.MaxValue) throw new ArgumentException($"channel-scale tensor of {n} elements exceeds the 2^31 element limit");
        if (s.Length != (long)batch * channels) throw new ArgumentException($"s has {s.Length} elements, expected [{batch},{channels}] = {batch * channels}");
        foreach (var (name, view) in tensors)
            if (view.Length != n) throw new ArgumentException($"{name} has {view.Length} elements, expected [{batch},{channels},{spatial}] = {n}");
        return (int)n;
    }

    /// <summary>y[i] = x[i]·s[i / spatial]: the forward, and dx = dy·s in the backward.</summary>
    static void ScaleKernel(ArrayView<float> x, ArrayView<float> s, ArrayView<float> y, int n, int spatial)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride) y[i] = x[i] * s[i / spatial];
    }

    /// <summary>One thread per (b, c) row: ds[r] = Σ dy·x over the row in order (rows are short: H·W ≤ 200 in the model).</summary>
    static void ScaleGradientKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> ds, int rows, int spatial)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int start = r * spatial;
            float sum = 0f;
            for (int i = 0; i < spatial; i++) sum += dy[start + i] * x[start + i];
            ds[r] = sum;
        }
    }
}
