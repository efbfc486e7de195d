using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>The integer sizes of a max-pool launch: x [Batch, Channels, Height, Width] → y [Batch, Channels, OutHeight, OutWidth].</summary>
public struct PoolShape
{
    public int Batch, Channels, Height, Width, Kernel, OutHeight, OutWidth;

    public readonly int Planes => Batch * Channels;
    public readonly int InputLength => Planes * Height * Width;
    public readonly int OutputLength => Planes * OutHeight * OutWidth;
}

/// <summary>
/// Max pooling with a square window equal to its stride (no padding, trailing rows and columns that do not
/// fill a window are dropped, as Paddle and PyTorch do), and global average pooling (the SE squeeze), NCHW.
/// </summary>
public sealed class Pooling
{
    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, PoolShape> _maxForward;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, PoolShape> _maxBackward;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int> _averageForward;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int> _averageBackward;

    public Pooling(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _maxForward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, PoolShape>(MaxForwardKernel);
        _maxBackward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, PoolShape>(MaxBackwardKernel);
        _averageForward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int>(GlobalAverageForwardKernel);
        _averageBackward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(GlobalAverageBackwardKernel);
    }

    /// <summary>The shape of a kernel×kernel, stride-kernel max pool over [batch, channels, height, width].</summary>
    public static PoolShape MaxPoolShape(int batch, int channels, int height, int width, int kernel = 2)
    {
        if (batch < 0 || channels < 0 || height < 0 || width < 0)
            throw new ArgumentException($"negative pooling input shape [{batch},{channels},{height},{width}]");
        if (kernel < 1) throw new ArgumentException($"pooling kernel {kernel} must be at least 1");
        if ((long)batch * channels * height * width > int.MaxValue) throw new ArgumentException("pooling input exceeds the 2^31 element limit");
        return new PoolShape
        {
            Batch = batch, Channels = channels, Height = height, Width = width, Kernel = kernel,
            OutHeight = height / kernel, OutWidth = width / kernel,
        };
    }

    /// <summary>
    /// y = the maximum of each window; indices = where it was, as h·Width + w within the input plane.
    /// Ties take the first maximum in row-major window order.
    /// </summary>
    public void MaxPoolForward(ArrayView<float> x, ArrayView<float> y, ArrayView<int> indices, PoolShape s)
    {
        CheckShape(s);
        CheckLength("x", x.Length, s.InputLength);
        CheckLength("y", y.Length, s.OutputLength);
        CheckLength("indices", indices.Length, s.OutputLength);
        if (s.OutputLength == 0) return;
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "the max pool");
            unsafe { HostMaxForward(HostMemory.Pointer(x), HostMemory.Pointer(y), (int*)HostMemory.Pointer(indices.Cast<float>()), s); }
        }
        else if (_device.Launch(nameof(MaxForwardKernel), s.OutputLength, s.InputLength, 4.0 * s.InputLength + 8.0 * s.OutputLength, out var grid))
            _maxForward(grid, x, y, indices, s);
    }

    /// <summary>
    /// Inference on the host (host policy): the max pool of a map pooled to one row ([B, C, H, W] → [B, C, 1, W/k])
    /// written straight as the sequence [B, W/k, C] (Im2Seq), with no arg-max indices: one pass instead of a pool
    /// and a transpose. The same maxima as <see cref="MaxPoolForward"/> (first maximum on ties).
    /// </summary>
    public void MaxPoolToSequence(ArrayView<float> x, ArrayView<float> sequence, PoolShape s)
    {
        if (!_device.UsesHost) throw new NotSupportedException("the fused max pool to a sequence is host code (host kernel policy)");
        CheckShape(s);
        if (s.OutHeight != 1) throw new ArgumentException($"a sequence needs a map pooled to one row, got {s.OutHeight}");
        CheckLength("x", x.Length, s.InputLength);
        CheckLength("sequence", sequence.Length, s.OutputLength);
        if (s.OutputLength == 0) return;
        HostMemory.Enter(_device, "the max pool");
        unsafe
        {
            nint px = (nint)HostMemory.Pointer(x), py = (nint)HostMemory.Pointer(sequence);
            // 2×2 windows eight channels at a time (a sequence row then takes one 8-wide store per eight channels, not
            // eight stores a row apart); the channels left over, and other windows, plane by plane.
            int groups = s.Kernel == 2 && Avx2.IsSupported ? s.Channels / 8 : 0;
            HostMemory.For(s.Batch, (long)s.Channels * s.Kernel * s.Width, (first, end) =>
            {
                for (int b = first; b < end; b++)
                {
                    float* planes = (float*)px + (long)b * s.Channels * s.Height * s.Width, rows = (float*)py + (long)b * s.OutWidth * s.Channels;
                    for (int g = 0; g < groups; g++) PoolEightPlanesToSequence(planes + (long)8 * g * s.Height * s.Width, rows + 8 * g, s);
                    for (int c = 8 * groups; c < s.Channels; c++) PoolPlaneToSequence(planes + (long)c * s.Height * s.Width, rows + c, s);
                }
            });
        }
    }

    /// <summary>One plane's windows into column <paramref name="y"/> of the sequence (stride: channels).</summary>
    static unsafe void PoolPlaneToSequence(float* x, float* y, PoolShape s)
    {
        for (int t = 0; t < s.OutWidth; t++) y[t * (long)s.Channels] = WindowMax(x, t, s);
    }

    /// <summary>Window t of a plane pooled to one row: the first maximum in window order.</summary>
    static unsafe float WindowMax(float* x, int t, PoolShape s)
    {
        int k = s.Kernel;
        float max = x[t * k];
        for (int dh = 0; dh < k; dh++)
            for (int dw = 0; dw < k; dw++)
            {
                float v = x[dh * s.Width + t * k + dw];
                max = v > max ? v : max;
            }
        return max;
    }

    /// <summary>Eight consecutive planes (2×2 windows) into columns [0, 8) from <paramref name="y"/> of the sequence rows:
    /// eight windows of each plane at a time (<see cref="Windows2x2"/>), the 8×8 block transposed in registers so that
    /// each sequence row takes one store; the last windows one by one.</summary>
    static unsafe void PoolEightPlanesToSequence(float* x, float* y, PoolShape s)
    {
        int ow = s.OutWidth, t = 0;
        long plane = (long)s.Height * s.Width, stride = s.Channels;
        for (; t + 8 <= ow; t += 8)
        {
            // Rows: channels; columns: windows t … t + 7.
            var m0 = Windows2x2(x, t, s.Width);
            var m1 = Windows2x2(x + plane, t, s.Width);
            var m2 = Windows2x2(x + 2 * plane, t, s.Width);
            var m3 = Windows2x2(x + 3 * plane, t, s.Width);
            var m4 = Windows2x2(x + 4 * plane, t, s.Width);
            var m5 = Windows2x2(x + 5 * plane, t, s.Width);
            var m6 = Windows2x2(x + 6 * plane, t, s.Width);
            var m7 = Windows2x2(x + 7 * plane, t, s.Width);
            // Pairs, then quads, then 128-bit halves: row i of the result is window t + i of the eight channels.
            Vector256<float> a0 = Avx.UnpackLow(m0, m1), a1 = Avx.UnpackHigh(m0, m1), a2 = Avx.UnpackLow(m2, m3), a3 = Avx.UnpackHigh(m2, m3);
            Vector256<float> a4 = Avx.UnpackLow(m4, m5), a5 = Avx.UnpackHigh(m4, m5), a6 = Avx.UnpackLow(m6, m7), a7 = Avx.UnpackHigh(m6, m7);
            Vector256<float> b0 = Avx.Shuffle(a0, a2, 0x44), b1 = Avx.Shuffle(a0, a2, 0xEE), b2 = Avx.Shuffle(a1, a3, 0x44), b3 = Avx.Shuffle(a1, a3, 0xEE);
            Vector256<float> b4 = Avx.Shuffle(a4, a6, 0x44), b5 = Avx.Shuffle(a4, a6, 0xEE), b6 = Avx.Shuffle(a5, a7, 0x44), b7 = Avx.Shuffle(a5, a7, 0xEE);
            float* row = y + t * stride;
            Avx.Permute2x128(b0, b4, 0x20).Store(row);
            Avx.Permute2x128(b1, b5, 0x20).Store(row + stride);
            Avx.Permute2x128(b2, b6, 0x20).Store(row + 2 * stride);
            Avx.Permute2x128(b3, b7, 0x20).Store(row + 3 * stride);
            Avx.Permute2x128(b0, b4, 0x31).Store(row + 4 * stride);
            Avx.Permute2x128(b1, b5, 0x31).Store(row + 5 * stride);
            Avx.Permute2x128(b2, b6, 0x31).Store(row + 6 * stride);
            Avx.Permute2x128(b3, b7, 0x31).Store(row + 7 * stride);
        }
        for (; t < ow; t++)
            for (int c = 0; c < 8; c++) y[t * stride + c] = WindowMax(x + c * plane, t, s);
    }

    /// <summary>Windows t … t + 7 of a plane 2 rows of <paramref name="width"/> high: even and odd columns of both rows
    /// taken apart with shuffles, maxima by compare and select in window order (a branch per element mispredicts on
    /// every other window).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe Vector256<float> Windows2x2(float* x, int t, int width)
    {
        var (e0, o0) = EvenOdd(x + 2 * t);
        var (e1, o1) = EvenOdd(x + width + 2 * t);
        var m = e0;
        m = Vector256.ConditionalSelect(Vector256.GreaterThan(o0, m), o0, m);
        m = Vector256.ConditionalSelect(Vector256.GreaterThan(e1, m), e1, m);
        return Vector256.ConditionalSelect(Vector256.GreaterThan(o1, m), o1, m);
    }

    /// <summary>Columns 0, 2, …, 14 and 1, 3, …, 15 of the 16 floats at <paramref name="p"/>, in order.</summary>
    static unsafe (Vector256<float> Even, Vector256<float> Odd) EvenOdd(float* p)
    {
        var lo = Avx.LoadVector256(p);
        var hi = Avx.LoadVector256(p + 8);
        // Within 128-bit lanes: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]; then the 64-bit pairs in order.
        var even = Avx.Shuffle(lo, hi, 0b10_00_10_00).AsDouble();
        var odd = Avx.Shuffle(lo, hi, 0b11_01_11_01).AsDouble();
        return (Avx2.Permute4x64(even, 0b11_01_10_00).AsSingle(), Avx2.Permute4x64(odd, 0b11_01_10_00).AsSingle());
    }

    /// <summary>dx = dy routed to each window's arg-max, 0 elsewhere (overwrites all of dx). Windows do
    /// not overlap, so every input element has at most one source and no sums are needed.</summary>
    public void MaxPoolBackward(ArrayView<float> dy, ArrayView<int> indices, ArrayView<float> dx, PoolShape s)
    {
        CheckShape(s);
        CheckLength("dy", dy.Length, s.OutputLength);
        CheckLength("indices", indices.Length, s.OutputLength);
        CheckLength("dx", dx.Length, s.InputLength);
        if (s.InputLength == 0) return;
        long rows = (long)s.Planes * ((s.Height + s.Kernel - 1) / s.Kernel);
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "the max pool");
            unsafe { HostMaxBackward(HostMemory.Pointer(dy), (int*)HostMemory.Pointer(indices.Cast<float>()), HostMemory.Pointer(dx), s); }
        }
        else if (_device.Launch(nameof(MaxBackwardKernel), rows, s.InputLength, 4.0 * s.InputLength + 8.0 * s.OutputLength, out var grid))
            _maxBackward(grid, dy, indices, dx, s);
    }

    /// <summary>y[b, c] = mean over the spatial positions of x[b, c, :] (x is [batch, channels, spatial]),
    /// each a sequential, fixed-order sum.</summary>
    public void GlobalAveragePoolForward(ArrayView<float> x, ArrayView<float> y, int batch, int channels, int spatial)
    {
        int rows = CheckAverage(batch, channels, spatial);
        CheckLength("x", x.Length, (long)rows * spatial);
        CheckLength("y", y.Length, rows);
        if (rows == 0) return;
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "the global average pool");
            unsafe { HostRows.AverageForward(HostMemory.Pointer(x), HostMemory.Pointer(y), rows, spatial); }
        }
        else if (_device.Launch(nameof(GlobalAverageForwardKernel), rows, x.Length, 4.0 * x.Length, out var grid))
            _averageForward(grid, x, y, rows, spatial);
    }

    /// <summary>dx[b, c, i] = dy[b, c]/spatial; with <paramref name="accumulate"/> it is added to dx
    /// (the SE input also feeds the channel scale, whose gradient arrives first).</summary>
    public void GlobalAveragePoolBackward(ArrayView<float> dy, ArrayView<float> dx, int batch, int channels, int spatial, bool accumulate = false)
    {
        int rows = CheckAverage(batch, channels, spatial);
        CheckLength("dy", dy.Length, rows);
        CheckLength("dx", dx.Length, (long)rows * spatial);
        if (dx.Length == 0) return;
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "the global average pool");
            unsafe { HostRows.AverageBackward(HostMemory.Pointer(dy), HostMemory.Pointer(dx), rows, spatial, accumulate); }
        }
        else if (_device.Launch(nameof(GlobalAverageBackwardKernel), dx.Length, dx.Length, 8.0 * dx.Length, out var grid))
            _averageBackward(grid, dy, dx, (int)dx.Length, spatial, accumulate ? 1 : 0);
    }

    /// <summary>A hand-made shape must agree with <see cref="MaxPoolShape"/>, or the kernels would read out of bounds.</summary>
    static void CheckShape(PoolShape s)
    {
        var expected = MaxPoolShape(s.Batch, s.Channels, s.Height, s.Width, s.Kernel);
        if (s.OutHeight != expected.OutHeight || s.OutWidth != expected.OutWidth)
            throw new ArgumentException($"pool output {s.OutHeight}x{s.OutWidth} does not match a {s.Kernel}x{s.Kernel} window over {s.Height}x{s.Width} (use Pooling.MaxPoolShape)");
    }

    static int CheckAverage(int batch, int channels, int spatial)
    {
        if (batch < 0 || channels < 0 || spatial < 1) throw new ArgumentException($"bad average-pool shape [{batch},{channels},{spatial}] (spatial must be at least 1)");
        if ((long)batch * channels * spatial > int.MaxValue) throw new ArgumentException("average-pool input exceeds the 2^31 element limit");
        return batch * channels;
    }

    static void CheckLength(string name, long actual, long expected)
    {
        if (actual != expected) throw new ArgumentException($"{name} has {actual} elements, expected {expected}");
    }

    /// <summary>The kernels' arithmetic on the host, in parallel over planes (same results).</summary>
    static unsafe void HostMaxForward(float* x, float* y, int* indices, PoolShape s)
    {
        nint px = (nint)x, py = (nint)y, pi = (nint)indices;
        HostMemory.For(s.Planes, s.Height * s.Width, (first, end) =>
            MaxPlanes((float*)px, (float*)py, (int*)pi, first, end, s.Height * s.Width, s.Width, s.OutHeight, s.OutWidth, s.Kernel));
    }

    /// <summary>Planes [first, end), output rows then columns (no division per output).</summary>
    static unsafe void MaxPlanes(float* x, float* y, int* indices, int first, int end, int inPlane, int width, int outHeight, int outWidth, int kernel)
    {
        int outPlane = outHeight * outWidth;
        for (int plane = first; plane < end; plane++)
        {
            float* xp = x + (long)plane * inPlane;
            int o = plane * outPlane;
            for (int oy = 0; oy < outHeight; oy++)
                for (int ox = 0; ox < outWidth; ox++, o++)
                {
                    int corner = oy * kernel * width + ox * kernel, best = corner;
                    float max = xp[best];
                    for (int dh = 0; dh < kernel; dh++)
                        for (int dw = 0, q = corner + dh * width; dw < kernel; dw++, q++)
                            if (xp[q] > max) // strictly greater: ties keep the first maximum
                            {
                                max = xp[q];
                                best = q;
                            }
                    y[o] = max;
                    indices[o] = best;
                }
        }
    }

    static unsafe void HostMaxBackward(float* dy, int* indices, float* dx, PoolShape s)
    {
        nint pdy = (nint)dy, pi = (nint)indices, pdx = (nint)dx;
        int inPlane = s.Height * s.Width, outPlane = s.OutHeight * s.OutWidth;
        HostMemory.For(s.Planes, inPlane, (first, end) =>
        {
            for (int plane = first; plane < end; plane++)
            {
                float* dxp = (float*)pdx + (long)plane * inPlane;
                new Span<float>(dxp, inPlane).Clear();
                for (int o = plane * outPlane, stop = o + outPlane; o < stop; o++) dxp[((int*)pi)[o]] = ((float*)pdy)[o];
            }
        });
    }

    static void MaxForwardKernel(ArrayView<float> x, ArrayView<float> y, ArrayView<int> indices, PoolShape s)
    {
        int outPlane = s.OutHeight * s.OutWidth, inPlane = s.Height * s.Width;
        int n = s.OutputLength, stride = Grid.DimX * Group.DimX;
        for (int o = Grid.GlobalIndex.X; o < n; o += stride)
        {
            int plane = o / outPlane, r = o % outPlane;
            int h0 = r / s.OutWidth * s.Kernel, w0 = r % s.OutWidth * s.Kernel;
            int origin = plane * inPlane;
            int best = h0 * s.Width + w0;
            float max = x[origin + best];
            for (int dh = 0; dh < s.Kernel; dh++)
            {
                int row = (h0 + dh) * s.Width + w0;
                for (int dw = 0; dw < s.Kernel; dw++)
                {
                    float v = x[origin + row + dw];
                    // Strictly greater: ties keep the first maximum.
                    if (v > max)
                    {
                        max = v;
                        best = row + dw;
                    }
                }
            }
            y[o] = max;
            indices[o] = best;
        }
    }

    /// <summary>
    /// One work item per band of k input rows in a plane (the rows of one output row, or the leftover rows
    /// below the last window): it writes every dx element of the band, so no division per element.
    /// </summary>
    static void MaxBackwardKernel(ArrayView<float> dy, ArrayView<int> indices, ArrayView<float> dx, PoolShape s)
    {
        int bandsPerPlane = (s.Height + s.Kernel - 1) / s.Kernel, inPlane = s.Height * s.Width;
        int bands = s.Planes * bandsPerPlane, stride = Grid.DimX * Group.DimX;
        for (int t = Grid.GlobalIndex.X; t < bands; t += stride)
        {
            int plane = t / bandsPerPlane, oh = t % bandsPerPlane;
            int h0 = oh * s.Kernel, h1 = XMath.Min(h0 + s.Kernel, s.Height);
            int origin = plane * inPlane;
            if (oh >= s.OutHeight)
            {
                for (int q = h0 * s.Width; q < h1 * s.Width; q++) dx[origin + q] = 0f;
                continue;
            }
            int o = (plane * s.OutHeight + oh) * s.OutWidth;
            for (int h = h0; h < h1; h++)
            {
                int row = h * s.Width, q = row;
                for (int ow = 0; ow < s.OutWidth; ow++)
                {
                    int winner = indices[o + ow];
                    float g = dy[o + ow];
                    for (int dw = 0; dw < s.Kernel; dw++, q++) dx[origin + q] = q == winner ? g : 0f;
                }
                for (; q < row + s.Width; q++) dx[origin + q] = 0f; // columns right of the last window
            }
        }
    }

    static void GlobalAverageForwardKernel(ArrayView<float> x, ArrayView<float> y, int rows, int spatial)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int r = Grid.GlobalIndex.X; r < rows; r += stride)
        {
            int start = r * spatial;
            float sum = 0f;
            for (int i = 0; i < spatial; i++) sum += x[start + i];
            y[r] = sum / spatial;
        }
    }

    static void GlobalAverageBackwardKernel(ArrayView<float> dy, ArrayView<float> dx, int n, int spatial, int accumulate)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            float g = dy[i / spatial] / spatial;
            dx[i] = accumulate != 0 ? dx[i] + g : g;
        }
    }
}
