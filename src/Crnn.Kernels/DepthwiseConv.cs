using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// Depthwise 2-D convolution (groups = channels, no bias) over NCHW: weights [channels, 1, k, k], any
/// kernel, strides and padding of <see cref="ConvShape"/> (the model uses k 3 or 5, stride (1,1) or (2,1),
/// padding (k − 1)/2: <see cref="ConvShape.Depthwise"/>). The shape's OutChannels must equal InChannels.
/// </summary>
public sealed class DepthwiseConv
{
    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape> _forward, _backwardData;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape, int> _weightGrouped;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape, int> _forwardFused;

    public DepthwiseConv(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _forward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape>(ForwardKernel);
        _backwardData = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape>(BackwardDataKernel);
        _weightGrouped = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape, int>(WeightGroupedKernel);
        _forwardFused = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape, int>(ForwardFusedKernel);
    }

    /// <summary>2 per multiply-add of the convolution (each of its three products has as many).</summary>
    static double Flops(ConvShape s) => 2.0 * s.OutputLength * s.Kernel * s.Kernel;

    static double Bytes(ConvShape s) => 4.0 * ((double)s.InputLength + s.OutputLength + WeightLength(s));

    /// <summary>Elements of the weight tensor [channels, 1, Kernel, Kernel].</summary>
    public static int WeightLength(ConvShape s) => s.InChannels * s.Kernel * s.Kernel;

    /// <summary>y = depthwise conv(x, w); y is overwritten.</summary>
    public void Forward(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ConvShape s)
    {
        Check(x, w, y, s, "y");
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "the depthwise convolution");
            unsafe { HostDepthwise.Forward(HostMemory.Pointer(x), HostMemory.Pointer(w), HostMemory.Pointer(y), s); }
        }
        else if (_device.Launch(nameof(ForwardKernel), s.OutputLength, Flops(s), Bytes(s), out var grid))
            _forward(grid, x, w, y, s);
    }

    /// <summary>Inference: y = act(BatchNorm(depthwise conv(x, w))) in one pass (<see cref="ChannelNorm"/>).</summary>
    public void Forward(ArrayView<float> x, ArrayView<float> w, ChannelNorm norm, ArrayView<float> y, ConvShape s, Activation act)
    {
        Check(x, w, y, s, "y");
        norm.Check(s.OutChannels, $"convolution {s}");
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "the depthwise convolution");
            unsafe
            {
                HostDepthwise.Forward(HostMemory.Pointer(x), HostMemory.Pointer(w), HostMemory.Pointer(y), s,
                    HostMemory.Pointer(norm.Scale), HostMemory.Pointer(norm.Offset), (int)act);
            }
        }
        else if (_device.Launch(nameof(ForwardFusedKernel), s.OutputLength, Flops(s), Bytes(s), out var grid))
            _forwardFused(grid, x, w, norm.Mean, norm.Scale, norm.Shift, y, s, (int)act);
    }

    /// <summary>dx = the gradient of Σ y·dy with respect to x (overwrites dx).</summary>
    public void BackwardData(ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx, ConvShape s)
    {
        Check(dx, w, dy, s, "dy");
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "the depthwise convolution");
            unsafe { HostDepthwise.BackwardData(HostMemory.Pointer(dy), HostMemory.Pointer(w), HostMemory.Pointer(dx), s); }
        }
        else if (_device.Launch(nameof(BackwardDataKernel), s.InputLength, Flops(s), Bytes(s), out var grid))
            _backwardData(grid, dy, w, dx, s);
    }

    /// <summary>dw = the gradient of Σ y·dy with respect to w, summed over batch and positions in a fixed order (overwrites dw).</summary>
    public void BackwardWeight(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, ConvShape s)
    {
        Check(x, dw, dy, s, "dy");
        int weights = WeightLength(s);
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "the depthwise weight gradient");
            unsafe { HostDepthwise.BackwardWeight(HostMemory.Pointer(dy), HostMemory.Pointer(x), HostMemory.Pointer(dw), s); }
        }
        else
        {
            var (config, perGroup) = Conv.GroupedConfig(_device, weights);
            if (_device.Launch(nameof(WeightGroupedKernel), config, (long)(weights + perGroup - 1) / perGroup * config.GroupDim.X, Flops(s), Bytes(s)))
                _weightGrouped(config, dy, x, dw, s, perGroup);
        }
    }

    static void Check(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ConvShape s, string output)
    {
        s.Validate();
        if (s.OutChannels != s.InChannels)
            throw new ArgumentException($"a depthwise convolution keeps its channels, but the shape maps {s.InChannels}→{s.OutChannels}");
        Conv.CheckLength(x, s.InputLength, "x", s);
        Conv.CheckLength(w, WeightLength(s), "w", s);
        Conv.CheckLength(y, s.OutputLength, output, s);
    }

    /// <summary>One thread per output element: Σ over the part of its channel's k×k window inside the input.</summary>
    static void ForwardKernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ConvShape s)
    {
        int n = s.OutputLength, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride) y[i] = Window(x, w, s, i);
    }

    static void ForwardFusedKernel(ArrayView<float> x, ArrayView<float> w, ArrayView<float> mean, ArrayView<float> scale, ArrayView<float> shift,
        ArrayView<float> y, ConvShape s, int act)
    {
        int n = s.OutputLength, plane = s.OutHeight * s.OutWidth, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            int c = i / plane % s.InChannels;
            y[i] = Activations.Apply(act, (Window(x, w, s, i) - mean[c]) * scale[c] + shift[c]);
        }
    }

    /// <summary>Output element i: Σ over the part of its window inside the input.</summary>
    static float Window(ArrayView<float> x, ArrayView<float> w, ConvShape s, int i)
    {
        int oh = s.OutHeight, ow = s.OutWidth, k = s.Kernel;
        int ox = i % ow, t = i / ow, oy = t % oh, bc = t / oh;
        int y0 = oy * s.StrideH - s.Pad, x0 = ox * s.StrideW - s.Pad;
        int kyEnd = Math.Min(k, s.Height - y0), kxFirst = Math.Max(0, -x0), kxEnd = Math.Min(k, s.Width - x0);
        int xBase = bc * s.Height * s.Width + x0, wBase = bc % s.InChannels * k * k;
        float sum = 0f;
        for (int ky = Math.Max(0, -y0); ky < kyEnd; ky++)
        {
            int xr = xBase + (y0 + ky) * s.Width, wr = wBase + ky * k;
            for (int kx = kxFirst; kx < kxEnd; kx++) sum += x[xr + kx] * w[wr + kx];
        }
        return sum;
    }

    /// <summary>One thread per input element: gathers the outputs whose windows cover it (no atomics), visiting
    /// only the taps that stride onto an output.</summary>
    static void BackwardDataKernel(ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx, ConvShape s)
    {
        int oh = s.OutHeight, ow = s.OutWidth, k = s.Kernel, sh = s.StrideH, sw = s.StrideW;
        int n = s.Batch * s.InChannels * s.Height * s.Width, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            int ix = i % s.Width, t = i / s.Width, iy = t % s.Height, bc = t / s.Height;
            int dyBase = bc * oh * ow, wBase = bc % s.InChannels * k * k;
            int kyLast = Math.Min(k - 1, iy + s.Pad), kxFirst = Conv.FirstTap(ix, s.Pad, sw, ow), kxLast = Math.Min(k - 1, ix + s.Pad);
            float sum = 0f;
            for (int ky = Conv.FirstTap(iy, s.Pad, sh, oh); ky <= kyLast; ky += sh)
            {
                int dr = dyBase + (iy + s.Pad - ky) / sh * ow, wr = wBase + ky * k;
                // Each further tap (kx += sw) reaches the output one column to the left.
                for (int kx = kxFirst, o = dr + (ix + s.Pad - kxFirst) / sw; kx <= kxLast; kx += sw, o--) sum += dy[o] * w[wr + kx];
            }
            dx[i] = sum;
        }
    }

    /// <summary>Σ over (image, output position) of dy·x for weight <paramref name="wi"/>, positions
    /// first..end by step, in that order.</summary>
    static float WeightSum(ArrayView<float> dy, ArrayView<float> x, ConvShape s, int wi, int first, int step)
    {
        int k = s.Kernel, oh = s.OutHeight, ow = s.OutWidth;
        int kx = wi % k, t = wi / k, ky = t % k, c = t / k;
        int positions = s.Batch * oh * ow;
        float sum = 0f;
        for (int j = first; j < positions; j += step)
        {
            int ox = j % ow, u = j / ow, oy = u % oh, b = u / oh;
            int iy = oy * s.StrideH - s.Pad + ky, ix = ox * s.StrideW - s.Pad + kx;
            int bc = b * s.InChannels + c;
            if (iy >= 0 && iy < s.Height && ix >= 0 && ix < s.Width)
                sum += dy[(bc * oh + oy) * ow + ox] * x[(bc * s.Height + iy) * s.Width + ix];
        }
        return sum;
    }

    /// <summary>GPU shape: a group takes <paramref name="perGroup"/> weights at a time, each summed by a segment
    /// of Group.DimX/perGroup threads (a strided share each, then a tree in shared memory).</summary>
    static void WeightGroupedKernel(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, ConvShape s, int perGroup)
    {
        var scratch = SharedMemory.Allocate<float>(GroupReduction.MaxGroupSize);
        int tid = Group.IdxX, threads = Group.DimX, groups = Grid.DimX;
        int width = threads / perGroup, segment = tid / width, lane = tid % width;
        int n = s.InChannels * s.Kernel * s.Kernel;
        for (int first = Grid.IdxX * perGroup; first < n; first += groups * perGroup)
        {
            int wi = first + segment;
            bool owner = segment < perGroup && wi < n;
            float sum = GroupReduction.SegmentSum(owner ? WeightSum(dy, x, s, wi, lane, width) : 0f, scratch, tid, threads, width);
            if (owner && lane == 0) dw[wi] = sum;
        }
    }
}
