using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// Shape of a grouped 2-D convolution over NCHW float32 tensors: input [Batch, InChannels, Height, Width], square
/// kernel, zero padding Pad on every side, output [Batch, OutChannels, OutHeight, OutWidth] with
/// OutHeight = (Height + 2·Pad − Kernel)/StrideH + 1 (likewise for the width). The channels split into Groups:
/// output channel o sees only the input channels of its group; weights [OutChannels, InChannels/Groups, k, k]
/// (PyTorch's and Paddle's layout). Groups 1: a dense convolution; Groups = InChannels = OutChannels: depthwise.
/// </summary>
public struct ConvShape
{
    public int Batch, InChannels, Height, Width, OutChannels, Kernel, StrideH, StrideW, Pad, Groups;

    public readonly int OutHeight => (Height + 2 * Pad - Kernel) / StrideH + 1;
    public readonly int OutWidth => (Width + 2 * Pad - Kernel) / StrideW + 1;
    public readonly int InputLength => Batch * InChannels * Height * Width;
    public readonly int OutputLength => Batch * OutChannels * OutHeight * OutWidth;
    public readonly int GroupInChannels => InChannels / Groups;
    public readonly int GroupOutChannels => OutChannels / Groups;
    /// <summary>Elements of the weight tensor [OutChannels, InChannels/Groups, Kernel, Kernel].</summary>
    public readonly int WeightLength => OutChannels * GroupInChannels * Kernel * Kernel;
    /// <summary>One channel per group, as many out as in (the host has its own code for it).</summary>
    public readonly bool IsDepthwise => Groups == InChannels && OutChannels == InChannels;

    /// <summary>A convolution of <paramref name="groups"/> groups.</summary>
    public static ConvShape Grouped(int batch, int inChannels, int height, int width, int outChannels,
        int kernel, int strideH, int strideW, int pad, int groups) => new()
    {
        Batch = batch, InChannels = inChannels, Height = height, Width = width, OutChannels = outChannels,
        Kernel = kernel, StrideH = strideH, StrideW = strideW, Pad = pad, Groups = groups,
    };

    /// <summary>A dense convolution (one group): weights [outChannels, inChannels, kernel, kernel].</summary>
    public static ConvShape Dense(int batch, int inChannels, int height, int width, int outChannels,
        int kernel, int strideH, int strideW, int pad) => Grouped(batch, inChannels, height, width, outChannels, kernel, strideH, strideW, pad, 1);

    /// <summary>A depthwise convolution (groups = channels) with "same" padding (kernel − 1)/2: weights [channels, 1, kernel, kernel].</summary>
    public static ConvShape Depthwise(int batch, int channels, int height, int width, int kernel, int strideH, int strideW) =>
        Grouped(batch, channels, height, width, channels, kernel, strideH, strideW, (kernel - 1) / 2, channels);

    /// <summary>Throws ArgumentException naming the first impossible size.</summary>
    internal readonly void Validate()
    {
        if (Batch < 1 || InChannels < 1 || OutChannels < 1 || Height < 1 || Width < 1)
            throw new ArgumentException($"convolution sizes must be positive: batch {Batch}, channels {InChannels}→{OutChannels}, {Height}×{Width}");
        if (Groups < 1 || InChannels % Groups != 0 || OutChannels % Groups != 0)
            throw new ArgumentException($"{Groups} groups must divide both channel counts {InChannels} and {OutChannels}");
        if (Kernel < 1 || StrideH < 1 || StrideW < 1 || Pad < 0)
            throw new ArgumentException($"bad convolution geometry: kernel {Kernel}, stride ({StrideH},{StrideW}), pad {Pad}");
        if (Pad >= Kernel)
            throw new ArgumentException($"padding {Pad} must be smaller than the kernel {Kernel} (else outputs see only padding)");
        if (Height + 2 * Pad < Kernel || Width + 2 * Pad < Kernel)
            throw new ArgumentException($"kernel {Kernel} is larger than the padded input {Height + 2 * Pad}×{Width + 2 * Pad}");
        long input = (long)Batch * InChannels * Height * Width;
        long output = (long)Batch * OutChannels * OutHeight * OutWidth;
        long weights = (long)OutChannels * GroupInChannels * Kernel * Kernel;
        if (Math.Max(input, Math.Max(output, weights)) > int.MaxValue)
            throw new ArgumentException("convolution tensors exceed the 2^31 element limit");
    }

    public override readonly string ToString() =>
        $"[{Batch},{InChannels},{Height},{Width}]→[{Batch},{OutChannels},{OutHeight},{OutWidth}] k{Kernel} s({StrideH},{StrideW}) p{Pad}" +
        (Groups == 1 ? "" : $" g{Groups}");
}

/// <summary>
/// Grouped 2-D convolution, no bias (<see cref="ConvShape"/>: dense with one group, depthwise with one channel per
/// group, anything between): forward, data gradient and weight gradient, every kernel size, stride and padding.
/// gpu policy: one thread per output (forward) or input element (data gradient, a gather: no atomics), weight
/// gradients as grouped fixed-order reductions. host policy: the depthwise case as host code
/// (<see cref="HostDepthwise"/>), the dense forward as im2col + GEMM (<see cref="HostDenseConv"/>), the rest
/// through the barrier-free kernels on the CPU accelerator.
/// </summary>
public sealed class GroupedConv
{
    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape> _forward, _backwardData, _weightPerThread;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape, int> _weightGrouped;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape, int> _forwardFused;

    public GroupedConv(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _forward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape>(ForwardKernel);
        _backwardData = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape>(BackwardDataKernel);
        _weightPerThread = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape>(WeightPerThreadKernel);
        _weightGrouped = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape, int>(WeightGroupedKernel);
        _forwardFused = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvShape, int>(ForwardFusedKernel);
    }

    /// <summary>2 per multiply-add of the convolution (each of its three products has as many).</summary>
    static double Flops(ConvShape s) => 2.0 * s.OutputLength * s.GroupInChannels * s.Kernel * s.Kernel;

    static double Bytes(ConvShape s) => 4.0 * ((double)s.InputLength + s.OutputLength + s.WeightLength);

    /// <summary>y = conv(x, w); y is overwritten.</summary>
    public void Forward(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ConvShape s)
    {
        Check(x, w, y, s, "y");
        if (Host(s, dense: true))
        {
            unsafe
            {
                if (s.IsDepthwise) HostDepthwise.Forward(HostMemory.Pointer(x), HostMemory.Pointer(w), HostMemory.Pointer(y), s);
                else HostDenseConv.Forward(HostMemory.Pointer(x), HostMemory.Pointer(w), HostMemory.Pointer(y), s, default);
            }
        }
        else if (_device.Launch(nameof(ForwardKernel), s.OutputLength, Flops(s), Bytes(s), out var grid))
            _forward(grid, x, w, y, s);
    }

    /// <summary>Inference: y = act(BatchNorm(conv(x, w))) in one pass (<see cref="ChannelNorm"/>).</summary>
    public void Forward(ArrayView<float> x, ArrayView<float> w, ChannelNorm norm, ArrayView<float> y, ConvShape s, Activation act)
    {
        Check(x, w, y, s, "y");
        norm.Check(s.OutChannels, $"convolution {s}");
        if (Host(s, dense: true))
        {
            unsafe
            {
                if (s.IsDepthwise)
                    HostDepthwise.Forward(HostMemory.Pointer(x), HostMemory.Pointer(w), HostMemory.Pointer(y), s,
                        HostMemory.Pointer(norm.Scale), HostMemory.Pointer(norm.Offset), (int)act);
                else HostDenseConv.Forward(HostMemory.Pointer(x), HostMemory.Pointer(w), HostMemory.Pointer(y), s, new HostEpilogue(norm, act));
            }
        }
        else if (_device.Launch(nameof(ForwardFusedKernel), s.OutputLength, Flops(s), Bytes(s), out var grid))
            _forwardFused(grid, x, w, norm.Mean, norm.Scale, norm.Shift, y, s, (int)act);
    }

    /// <summary>dx = the gradient of Σ y·dy with respect to x (overwrites dx).</summary>
    public void BackwardData(ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx, ConvShape s)
    {
        Check(dx, w, dy, s, "dy");
        if (Host(s, dense: false))
            unsafe { HostDepthwise.BackwardData(HostMemory.Pointer(dy), HostMemory.Pointer(w), HostMemory.Pointer(dx), s); }
        else if (_device.Launch(nameof(BackwardDataKernel), s.InputLength, Flops(s), Bytes(s), out var grid))
            _backwardData(grid, dy, w, dx, s);
    }

    /// <summary>dw = the gradient of Σ y·dy with respect to w, summed over batch and positions in a fixed order
    /// (overwrites dw): a group-shared reduction per weight (gpu), host code (depthwise) or one thread per weight (host).</summary>
    public void BackwardWeight(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, ConvShape s)
    {
        Check(x, dw, dy, s, "dy");
        int weights = s.WeightLength;
        if (Host(s, dense: false))
            unsafe { HostDepthwise.BackwardWeight(HostMemory.Pointer(dy), HostMemory.Pointer(x), HostMemory.Pointer(dw), s); }
        else if (_device.UsesHost)
        {
            if (_device.Launch(nameof(WeightPerThreadKernel), weights, Flops(s), Bytes(s), out var grid))
                _weightPerThread(grid, dy, x, dw, s);
        }
        else
        {
            var (config, perGroup) = Conv.GroupedConfig(_device, weights);
            if (_device.Launch(nameof(WeightGroupedKernel), config, (long)(weights + perGroup - 1) / perGroup * config.GroupDim.X, Flops(s), Bytes(s)))
                _weightGrouped(config, dy, x, dw, s, perGroup);
        }
    }

    /// <summary>Whether the host policy has host code for this operation: the depthwise case always, the dense
    /// case for the forward (<paramref name="dense"/>). Other shapes run the kernels.</summary>
    bool Host(ConvShape s, bool dense)
    {
        if (!_device.UsesHost || !(s.IsDepthwise || (dense && s.Groups == 1))) return false;
        HostMemory.Enter(_device, "the convolution");
        return true;
    }

    static void Check(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ConvShape s, string output)
    {
        s.Validate();
        Conv.CheckLength(x, s.InputLength, "x", s);
        Conv.CheckLength(w, s.WeightLength, "w", s);
        Conv.CheckLength(y, s.OutputLength, output, s);
    }

    /// <summary>One thread per output element: Σ over its group's input channels and the part of the window inside the input.</summary>
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
            int c = i / plane % s.OutChannels;
            y[i] = Activations.Apply(act, (Window(x, w, s, i) - mean[c]) * scale[c] + shift[c]);
        }
    }

    /// <summary>Output element i: Σ over its group's input channels and the part of its window inside the input.</summary>
    static float Window(ArrayView<float> x, ArrayView<float> w, ConvShape s, int i)
    {
        int oh = s.OutHeight, ow = s.OutWidth, k = s.Kernel, plane = s.Height * s.Width, groupIn = s.GroupInChannels;
        int ox = i % ow, t = i / ow, oy = t % oh;
        t /= oh;
        int oc = t % s.OutChannels, b = t / s.OutChannels, firstIn = oc / s.GroupOutChannels * groupIn;
        int y0 = oy * s.StrideH - s.Pad, x0 = ox * s.StrideW - s.Pad;
        int kyFirst = Math.Max(0, -y0), kyEnd = Math.Min(k, s.Height - y0), kxFirst = Math.Max(0, -x0), kxEnd = Math.Min(k, s.Width - x0);
        float sum = 0f;
        for (int j = 0; j < groupIn; j++)
        {
            int xBase = (b * s.InChannels + firstIn + j) * plane + x0, wBase = (oc * groupIn + j) * k * k;
            for (int ky = kyFirst; ky < kyEnd; ky++)
            {
                int xr = xBase + (y0 + ky) * s.Width, wr = wBase + ky * k;
                for (int kx = kxFirst; kx < kxEnd; kx++) sum += x[xr + kx] * w[wr + kx];
            }
        }
        return sum;
    }

    /// <summary>One thread per input element: gathers every output of its group whose window covers it (no atomics),
    /// visiting only the taps that stride onto an output.</summary>
    static void BackwardDataKernel(ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx, ConvShape s)
    {
        int oh = s.OutHeight, ow = s.OutWidth, k = s.Kernel, sh = s.StrideH, sw = s.StrideW;
        int groupIn = s.GroupInChannels, groupOut = s.GroupOutChannels;
        int n = s.Batch * s.InChannels * s.Height * s.Width, stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            int ix = i % s.Width, t = i / s.Width, iy = t % s.Height;
            t /= s.Height;
            int ic = t % s.InChannels, b = t / s.InChannels, group = ic / groupIn, j = ic - group * groupIn;
            int kyFirst = Conv.FirstTap(iy, s.Pad, sh, oh), kyLast = Math.Min(k - 1, iy + s.Pad);
            int kxFirst = Conv.FirstTap(ix, s.Pad, sw, ow), kxLast = Math.Min(k - 1, ix + s.Pad);
            float sum = 0f;
            for (int oc = group * groupOut; oc < (group + 1) * groupOut; oc++)
            {
                int dyBase = (b * s.OutChannels + oc) * oh * ow, wBase = (oc * groupIn + j) * k * k;
                for (int ky = kyFirst; ky <= kyLast; ky += sh)
                {
                    int dr = dyBase + (iy + s.Pad - ky) / sh * ow, wr = wBase + ky * k;
                    // Each further tap (kx += sw) reaches the output one column to the left.
                    for (int kx = kxFirst, o = dr + (ix + s.Pad - kxFirst) / sw; kx <= kxLast; kx += sw, o--) sum += dy[o] * w[wr + kx];
                }
            }
            dx[i] = sum;
        }
    }

    /// <summary>Weight wi's output channel, input channel and taps.</summary>
    static (int Oc, int Ic, int Ky, int Kx) WeightIndex(ConvShape s, int wi)
    {
        int k = s.Kernel, groupIn = s.GroupInChannels;
        int kx = wi % k, t = wi / k, ky = t % k;
        t /= k;
        int j = t % groupIn, oc = t / groupIn;
        return (oc, oc / s.GroupOutChannels * groupIn + j, ky, kx);
    }

    /// <summary>Σ over (image, output position) of dy·x for weight <paramref name="wi"/>, positions
    /// first..end by step, in that order.</summary>
    static float WeightSum(ArrayView<float> dy, ArrayView<float> x, ConvShape s, int wi, int first, int step)
    {
        int oh = s.OutHeight, ow = s.OutWidth;
        var (oc, ic, ky, kx) = WeightIndex(s, wi);
        int positions = s.Batch * oh * ow;
        float sum = 0f;
        for (int j = first; j < positions; j += step)
        {
            int ox = j % ow, u = j / ow, oy = u % oh, b = u / oh;
            int iy = oy * s.StrideH - s.Pad + ky, ix = ox * s.StrideW - s.Pad + kx;
            if (iy >= 0 && iy < s.Height && ix >= 0 && ix < s.Width)
                sum += dy[((b * s.OutChannels + oc) * oh + oy) * ow + ox] * x[((b * s.InChannels + ic) * s.Height + iy) * s.Width + ix];
        }
        return sum;
    }

    /// <summary>CPU shape: one thread per weight, a sequential sum over the batch and the output positions its tap reaches.</summary>
    static void WeightPerThreadKernel(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, ConvShape s)
    {
        int n = s.WeightLength, stride = Grid.DimX * Group.DimX;
        int oh = s.OutHeight, ow = s.OutWidth;
        for (int wi = Grid.GlobalIndex.X; wi < n; wi += stride)
        {
            var (oc, ic, ky, kx) = WeightIndex(s, wi);
            // Only the output rows and columns whose tap (ky, kx) lands inside the input.
            int oyFirst = Conv.FirstOutput(s.Pad, ky, s.StrideH), oyEnd = Conv.EndOutput(s.Height, s.Pad, ky, s.StrideH, oh);
            int oxFirst = Conv.FirstOutput(s.Pad, kx, s.StrideW), oxEnd = Conv.EndOutput(s.Width, s.Pad, kx, s.StrideW, ow);
            float sum = 0f;
            for (int b = 0; b < s.Batch; b++)
            {
                int dyBase = (b * s.OutChannels + oc) * oh, xBase = (b * s.InChannels + ic) * s.Height;
                for (int oy = oyFirst; oy < oyEnd; oy++)
                {
                    int dr = (dyBase + oy) * ow, xr = (xBase + oy * s.StrideH - s.Pad + ky) * s.Width - s.Pad + kx;
                    for (int ox = oxFirst; ox < oxEnd; ox++) sum += dy[dr + ox] * x[xr + ox * s.StrideW];
                }
            }
            dw[wi] = sum;
        }
    }

    /// <summary>GPU shape: a group takes <paramref name="perGroup"/> weights at a time, each summed by a segment
    /// of Group.DimX/perGroup threads (a strided share each, then a tree in shared memory).</summary>
    static void WeightGroupedKernel(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, ConvShape s, int perGroup)
    {
        var scratch = SharedMemory.Allocate<float>(GroupReduction.MaxGroupSize);
        int tid = Group.IdxX, threads = Group.DimX, groups = Grid.DimX;
        int width = threads / perGroup, segment = tid / width, lane = tid % width;
        int n = s.WeightLength;
        for (int first = Grid.IdxX * perGroup; first < n; first += groups * perGroup)
        {
            int wi = first + segment;
            bool owner = segment < perGroup && wi < n;
            float sum = GroupReduction.SegmentSum(owner ? WeightSum(dy, x, s, wi, lane, width) : 0f, scratch, tid, threads, width);
            if (owner && lane == 0) dw[wi] = sum;
        }
    }
}

/// <summary>Argument checks and launch choices shared by the convolution families.</summary>
internal static class Conv
{
    public static void CheckLength(ArrayView<float> view, long expected, string name, ConvShape s)
    {
        if (view.Length != expected)
            throw new ArgumentException($"{name} has {view.Length} elements, expected {expected} for convolution {s}");
    }

    /// <summary>First output index o whose tap <paramref name="tap"/> lands in the input: o·stride − pad + tap ≥ 0.</summary>
    public static int FirstOutput(int pad, int tap, int stride)
    {
        int d = pad - tap;
        return d > 0 ? (d + stride - 1) / stride : 0;
    }

    /// <summary>One past the last output index o whose tap lands in an input of <paramref name="size"/>: o·stride − pad + tap ≤ size − 1.</summary>
    public static int EndOutput(int size, int pad, int tap, int stride, int outSize)
    {
        int e = size - 1 + pad - tap;
        return e < 0 ? 0 : Math.Min(outSize, e / stride + 1);
    }

    /// <summary>First tap that maps input index <paramref name="i"/> onto an output: (i + pad − tap) divisible by the
    /// stride and (i + pad − tap)/stride below outSize. Further taps follow every <paramref name="stride"/>, up to min(k − 1, i + pad).</summary>
    public static int FirstTap(int i, int pad, int stride, int outSize) => Math.Max((i + pad) % stride, i + pad - (outSize - 1) * stride);

    /// <summary>
    /// Launch of a grouped reduction over <paramref name="outputs"/> sums: each group takes perGroup outputs at
    /// a time, as few as keep the device's groups busy, so every output gets as many threads as possible.
    /// </summary>
    public static (KernelConfig Config, int PerGroup) GroupedConfig(Device device, int outputs)
    {
        if (device.GroupSize > GroupReduction.MaxGroupSize)
            throw new ArgumentException($"group size {device.GroupSize} exceeds the reduction scratch of {GroupReduction.MaxGroupSize}");
        int perGroup = Math.Clamp((outputs + device.MaxGroups - 1) / device.MaxGroups, 1, device.GroupSize);
        int groups = Math.Min((outputs + perGroup - 1) / perGroup, device.MaxGroups);
        return (device.Groups(groups, device.GroupSize), perGroup);
    }
}
