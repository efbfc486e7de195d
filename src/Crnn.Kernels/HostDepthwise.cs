using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static Crnn.Kernels.HostMemory;

namespace Crnn.Kernels;

/// <summary>
/// The CPU path of <see cref="GroupedConv"/> for depthwise shapes: host code on the CPU accelerator's memory (see
/// <see cref="HostMemory"/>). Forward and data gradient run in parallel over (image, channel) planes, the
/// weight gradient over channels. With width stride 1 (the model's (1,1) and (2,1)) the rows are copied into a
/// zero-padded per-thread plane, so every tap is an unaligned 8-wide load along the output width with no
/// bounds tests; other width strides take a scalar loop.
/// <para>
/// Deterministic: every output element (and every weight's gradient, owned by one task that sums its channel's
/// images and rows in order, in fixed SIMD lanes) is computed in an order fixed by the shape alone.
/// </para>
/// </summary>
internal static unsafe class HostDepthwise
{
    const int V = 8; // Vector256<float> lanes
    /// <summary>Outputs per step of the row loops (forward, data gradient): four vectors.</summary>
    const int Block = 4 * V;

    /// <summary>Accumulators of <see cref="Block"/> consecutive outputs, four independent multiply-add chains instead
    /// of one waiting on its own latency (each output's own sum, tap after tap, is unchanged).</summary>
    interface IChains
    {
        static abstract int Block { get; }
        /// <summary>Adds weight·src[i] to output i, for the block's outputs.</summary>
        void Tap(float* src, float weight);
        void Store(float* dst);
        /// <summary>The first <paramref name="n"/> outputs as act(sum·scale + offset) into <paramref name="dst"/>
        /// (<see cref="HostElementwise.ScaleShift(float*, float*, int, float, float, int)"/>'s arithmetic);
        /// <paramref name="row"/>: a block of scratch.</summary>
        void Write(float* dst, int n, float scale, float offset, int act, float* row);
    }

    /// <summary>Four 8-wide chains: <see cref="Block"/> = 32 outputs.</summary>
    struct Chains : IChains
    {
        Vector256<float> _a0, _a1, _a2, _a3;

        public static int Block => HostDepthwise.Block;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Tap(float* src, float weight)
        {
            var w = Vector256.Create(weight);
            _a0 = MultiplyAdd(Vector256.Load(src), w, _a0);
            _a1 = MultiplyAdd(Vector256.Load(src + V), w, _a1);
            _a2 = MultiplyAdd(Vector256.Load(src + 2 * V), w, _a2);
            _a3 = MultiplyAdd(Vector256.Load(src + 3 * V), w, _a3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(float* dst)
        {
            _a0.Store(dst);
            _a1.Store(dst + V);
            _a2.Store(dst + 2 * V);
            _a3.Store(dst + 3 * V);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)] // a call would take the chains' address: they would live on the stack
        public readonly void Write(float* dst, int n, float scale, float offset, int act, float* row)
        {
            Store(row);
            HostElementwise.ScaleShift(row, dst, n, scale, offset, act);
        }
    }

    /// <summary>Four 16-wide AVX-512 chains: 64 outputs, a row of the model's 50 in one block (the same fused
    /// multiply-adds per output as <see cref="Chains"/>, so the same bits).</summary>
    struct WideChains : IChains
    {
        Vector512<float> _a0, _a1, _a2, _a3;

        public static int Block => 64;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Tap(float* src, float weight)
        {
            var w = Vector512.Create(weight);
            _a0 = Avx512F.FusedMultiplyAdd(Vector512.Load(src), w, _a0);
            _a1 = Avx512F.FusedMultiplyAdd(Vector512.Load(src + 16), w, _a1);
            _a2 = Avx512F.FusedMultiplyAdd(Vector512.Load(src + 32), w, _a2);
            _a3 = Avx512F.FusedMultiplyAdd(Vector512.Load(src + 48), w, _a3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(float* dst)
        {
            _a0.Store(dst);
            _a1.Store(dst + 16);
            _a2.Store(dst + 32);
            _a3.Store(dst + 48);
        }

        /// <summary>Straight from the registers, the last vector masked: no pass over a row buffer, no scalar tail.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Write(float* dst, int n, float scale, float offset, int act, float* row)
        {
            var sv = Vector512.Create(scale);
            var tv = Vector512.Create(offset);
            Put(dst, n, HostElementwise.Activate(act, Avx512F.FusedMultiplyAdd(_a0, sv, tv)));
            Put(dst + 16, n - 16, HostElementwise.Activate(act, Avx512F.FusedMultiplyAdd(_a1, sv, tv)));
            Put(dst + 32, n - 32, HostElementwise.Activate(act, Avx512F.FusedMultiplyAdd(_a2, sv, tv)));
            Put(dst + 48, n - 48, HostElementwise.Activate(act, Avx512F.FusedMultiplyAdd(_a3, sv, tv)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Put(float* dst, int n, Vector512<float> v)
        {
            if (n >= 16) v.Store(dst);
            else if (n > 0) Avx512F.MaskStore(dst, Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(n)).AsSingle(), v);
        }
    }

    /// <summary>Whether the forward runs <see cref="WideChains"/> (AVX-512 with FMA, as <see cref="MultiplyAdd"/> is fused there); tests turn it off.</summary>
    internal static bool UseAvx512 = Avx512F.IsSupported && Fma.IsSupported;

    [ThreadStatic] static float[]? t_plane, t_row;

    /// <summary>Row pitch of a padded input plane: pad zeros, the row, then zeros to cover the last vector's taps.</summary>
    static int PaddedWidth(ConvShape s) => s.Width + 2 * s.Pad + V;

    /// <summary>Copies input plane x (H×W) into dst (H×pitch), shifted right by <paramref name="left"/> zeros, zeros after.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PadPlane(float* x, int height, int width, int left, int pitch, float* dst)
    {
        for (int r = 0; r < height; r++)
        {
            float* d = dst + (long)r * pitch;
            new Span<float>(d, left).Clear();
            CopyRow(x + (long)r * width, d + left, width);
            new Span<float>(d + left + width, pitch - left - width).Clear();
        }
    }

    public static void Forward(float* x, float* w, float* y, ConvShape s, float* scale = null, float* offset = null, int act = 0)
    {
        int planes = s.Batch * s.InChannels, k = s.Kernel;
        nint px = (nint)x, pw = (nint)w, py = (nint)y, ps = (nint)scale, pt = (nint)offset;
        bool wide = UseAvx512;
        For(planes, (long)s.OutHeight * s.OutWidth * k * k, (first, end) =>
        {
            int block = wide ? WideChains.Block : Chains.Block, pitch = PaddedWidth(s);
            // One zeroed plane per range: each plane copies its rows into the interior, the padding stays zero.
            // The last block of a row may read up to a block past it: the plane has that much slack after its end.
            // (The scalar path of other width strides reads the input in place.)
            int planeLength = s.Height * pitch + block;
            float* plane = null, row = null;
            if (s.StrideW == 1)
            {
                plane = Scratch(ref t_plane, planeLength);
                row = Scratch(ref t_row, (s.OutWidth + block - 1) / block * block);
                new Span<float>(plane, planeLength).Clear();
            }
            for (int p = first; p < end; p++)
            {
                float* xp = (float*)px + (long)p * s.Height * s.Width, yp = (float*)py + (long)p * s.OutHeight * s.OutWidth;
                float* wp = (float*)pw + p % s.InChannels * k * k;
                int c = p % s.InChannels;
                float sc = ps == 0 ? 1f : ((float*)ps)[c], off = pt == 0 ? 0f : ((float*)pt)[c];
                if (s.StrideW != 1) ForwardPlaneScalar(xp, wp, yp, s, sc, off, act);
                else if (wide) ForwardPlane<WideChains>(xp, wp, yp, s, sc, off, act, plane, pitch, row);
                else ForwardPlane<Chains>(xp, wp, yp, s, sc, off, act, plane, pitch, row);
            }
        });
    }

    /// <summary>y row oy = Σ over in-range ky, all kx of w[ky,kx]·padded row (oy·sh − pad + ky) shifted by kx; then
    /// BatchNorm as ·scale + offset and the activation (inference; no-ops in training). <paramref name="plane"/>:
    /// zero-padded rows of <paramref name="pitch"/>, whose padding is already zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ForwardPlane<TChains>(float* x, float* w, float* y, ConvShape s, float scale, float offset, int act,
        float* plane, int pitch, float* row) where TChains : struct, IChains
    {
        int k = s.Kernel, oh = s.OutHeight, ow = s.OutWidth, block = TChains.Block;
        for (int r = 0; r < s.Height; r++) CopyRow(x + (long)r * s.Width, plane + (long)r * pitch + s.Pad, s.Width);
        int oy = 0;
        // Two output rows at a time: twice the independent chains (one row's taps wait on each other's latency), each
        // input row read for both. Input rows in order, so each output still sums its taps ky by ky, kx by kx.
        for (; oy + 1 < oh; oy += 2)
        {
            int y0 = oy * s.StrideH - s.Pad, y1 = y0 + s.StrideH;
            int rFirst = Math.Max(0, y0), rEnd = Math.Min(s.Height, y1 + k);
            for (int ox = 0; ox < ow; ox += block)
            {
                TChains upper = new(), lower = new();
                for (int r = rFirst; r < rEnd; r++)
                {
                    float* src = plane + (long)r * pitch + ox, wu = w + (r - y0) * k, wl = w + (r - y1) * k;
                    bool inUpper = r < y0 + k, inLower = r >= y1;
                    if (inUpper && inLower)
                        for (int kx = 0; kx < k; kx++) { upper.Tap(src + kx, wu[kx]); lower.Tap(src + kx, wl[kx]); }
                    else if (inUpper)
                        for (int kx = 0; kx < k; kx++) upper.Tap(src + kx, wu[kx]);
                    else
                        for (int kx = 0; kx < k; kx++) lower.Tap(src + kx, wl[kx]);
                }
                int n = Math.Min(block, ow - ox);
                upper.Write(y + (long)oy * ow + ox, n, scale, offset, act, row + ox);
                lower.Write(y + (long)(oy + 1) * ow + ox, n, scale, offset, act, row + ox);
            }
        }
        for (; oy < oh; oy++)
        {
            int y0 = oy * s.StrideH - s.Pad;
            int kyFirst = Math.Max(0, -y0), kyEnd = Math.Min(k, s.Height - y0);
            for (int ox = 0; ox < ow; ox += block)
            {
                var chains = new TChains();
                for (int ky = kyFirst; ky < kyEnd; ky++)
                {
                    float* src = plane + (long)(y0 + ky) * pitch + ox, wr = w + ky * k;
                    for (int kx = 0; kx < k; kx++) chains.Tap(src + kx, wr[kx]);
                }
                chains.Write(y + (long)oy * ow + ox, Math.Min(block, ow - ox), scale, offset, act, row + ox);
            }
        }
    }

    /// <summary>Copies n floats with 8-wide moves, the last one overlapping (a plane's rows are a few dozen floats:
    /// a library copy per row costs more than the move).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void CopyRow(float* src, float* dst, int n)
    {
        if (n < V) { for (int i = 0; i < n; i++) dst[i] = src[i]; return; }
        for (int i = 0; i < n - V; i += V) Vector256.Load(src + i).Store(dst + i);
        Vector256.Load(src + n - V).Store(dst + n - V);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ForwardPlaneScalar(float* x, float* w, float* y, ConvShape s, float scale, float offset, int act)
    {
        int k = s.Kernel, oh = s.OutHeight, ow = s.OutWidth;
        for (int oy = 0; oy < oh; oy++)
        {
            int y0 = oy * s.StrideH - s.Pad;
            int kyFirst = Math.Max(0, -y0), kyEnd = Math.Min(k, s.Height - y0);
            for (int ox = 0; ox < ow; ox++)
            {
                int x0 = ox * s.StrideW - s.Pad, kxFirst = Math.Max(0, -x0), kxEnd = Math.Min(k, s.Width - x0);
                float sum = 0f;
                for (int ky = kyFirst; ky < kyEnd; ky++)
                {
                    float* src = x + (long)(y0 + ky) * s.Width + x0, wr = w + ky * k;
                    for (int kx = kxFirst; kx < kxEnd; kx++) sum += src[kx] * wr[kx];
                }
                y[(long)oy * ow + ox] = Activations.Apply(act, MathF.FusedMultiplyAdd(sum, scale, offset));
            }
        }
    }

    public static void BackwardData(float* dy, float* w, float* dx, ConvShape s)
    {
        int planes = s.Batch * s.InChannels, k = s.Kernel;
        nint pdy = (nint)dy, pw = (nint)w, pdx = (nint)dx;
        For(planes, (long)s.Height * s.Width * k * k / s.StrideH, (first, end) =>
        {
            for (int p = first; p < end; p++)
            {
                float* dyp = (float*)pdy + (long)p * s.OutHeight * s.OutWidth, dxp = (float*)pdx + (long)p * s.Height * s.Width;
                float* wp = (float*)pw + p % s.InChannels * k * k;
                if (s.StrideW == 1) BackwardDataPlane(dyp, wp, dxp, s);
                else BackwardDataPlaneScalar(dyp, wp, dxp, s);
            }
        });
    }

    /// <summary>Width stride 1: dx[iy, ix] = Σ over taps ky reaching an output row oy, and j in [0, k), of
    /// w[ky, k−1−j]·pd[oy, ix + j], where pd is dy's row shifted right by k − 1 − pad zeros (a correlation with
    /// the flipped kernel row).</summary>
    static void BackwardDataPlane(float* dy, float* w, float* dx, ConvShape s)
    {
        int k = s.Kernel, oh = s.OutHeight, ow = s.OutWidth, sh = s.StrideH, left = k - 1 - s.Pad;
        int pitch = s.Width + 2 * k + V, rowLength = (s.Width + Block - 1) / Block * Block;
        float* plane = Scratch(ref t_plane, oh * pitch + Block), row = Scratch(ref t_row, rowLength); // slack: as in ForwardPlane
        PadPlane(dy, oh, ow, left, pitch, plane);
        for (int iy = 0; iy < s.Height; iy++)
        {
            int kyFirst = Conv.FirstTap(iy, s.Pad, sh, oh), kyLast = Math.Min(k - 1, iy + s.Pad);
            float* dst = dx + (long)iy * s.Width;
            if (kyFirst > kyLast) { new Span<float>(dst, s.Width).Clear(); continue; }
            for (int ix = 0; ix < s.Width; ix += Block)
            {
                var chains = new Chains();
                for (int ky = kyFirst; ky <= kyLast; ky += sh)
                {
                    float* src = plane + (long)((iy + s.Pad - ky) / sh) * pitch + ix, wr = w + ky * k + k - 1;
                    for (int j = 0; j < k; j++) chains.Tap(src + j, wr[-j]);
                }
                chains.Store(row + ix);
            }
            new ReadOnlySpan<float>(row, s.Width).CopyTo(new Span<float>(dst, s.Width));
        }
    }

    static void BackwardDataPlaneScalar(float* dy, float* w, float* dx, ConvShape s)
    {
        int k = s.Kernel, oh = s.OutHeight, ow = s.OutWidth, sh = s.StrideH, sw = s.StrideW;
        for (int iy = 0; iy < s.Height; iy++)
        {
            int kyFirst = Conv.FirstTap(iy, s.Pad, sh, oh), kyLast = Math.Min(k - 1, iy + s.Pad);
            for (int ix = 0; ix < s.Width; ix++)
            {
                int kxFirst = Conv.FirstTap(ix, s.Pad, sw, ow), kxLast = Math.Min(k - 1, ix + s.Pad);
                float sum = 0f;
                for (int ky = kyFirst; ky <= kyLast; ky += sh)
                {
                    float* dr = dy + (long)((iy + s.Pad - ky) / sh) * ow, wr = w + ky * k;
                    for (int kx = kxFirst, o = (ix + s.Pad - kxFirst) / sw; kx <= kxLast; kx += sw, o--) sum += dr[o] * wr[kx];
                }
                dx[(long)iy * s.Width + ix] = sum;
            }
        }
    }

    public static void BackwardWeight(float* dy, float* x, float* dw, ConvShape s)
    {
        int k = s.Kernel;
        nint pdy = (nint)dy, px = (nint)x, pdw = (nint)dw;
        For(s.InChannels, (long)s.Batch * s.OutHeight * s.OutWidth * k * k, (first, end) =>
        {
            for (int c = first; c < end; c++)
            {
                if (s.StrideW == 1) WeightChannel((float*)pdy, (float*)px, (float*)pdw + c * k * k, s, c);
                else WeightChannelScalar((float*)pdy, (float*)px, (float*)pdw + c * k * k, s, c);
            }
        });
    }

    /// <summary>Channel c's k·k weight gradients, width stride 1: one 8-lane accumulator per weight, summed over
    /// images, output rows and 8-wide column blocks in that order, then across lanes in a fixed order. Columns past
    /// the output's width meet zeros in the padded dy row.</summary>
    static void WeightChannel(float* dy, float* x, float* dw, ConvShape s, int c)
    {
        int k = s.Kernel, oh = s.OutHeight, ow = s.OutWidth, pitch = PaddedWidth(s), dyPitch = (ow + V - 1) / V * V;
        float* plane = Scratch(ref t_plane, s.Height * pitch), dyRow = Scratch(ref t_row, dyPitch);
        var acc = stackalloc Vector256<float>[k * k];
        for (int i = 0; i < k * k; i++) acc[i] = Vector256<float>.Zero;
        for (int b = 0; b < s.Batch; b++)
        {
            long bc = (long)b * s.InChannels + c;
            PadPlane(x + bc * s.Height * s.Width, s.Height, s.Width, s.Pad, pitch, plane);
            float* dyp = dy + bc * oh * ow;
            for (int oy = 0; oy < oh; oy++)
            {
                new ReadOnlySpan<float>(dyp + (long)oy * ow, ow).CopyTo(new Span<float>(dyRow, ow));
                new Span<float>(dyRow + ow, dyPitch - ow).Clear();
                int y0 = oy * s.StrideH - s.Pad;
                int kyFirst = Math.Max(0, -y0), kyEnd = Math.Min(k, s.Height - y0);
                for (int ky = kyFirst; ky < kyEnd; ky++)
                {
                    float* src = plane + (long)(y0 + ky) * pitch;
                    for (int kx = 0; kx < k; kx++)
                    {
                        // The weight's lanes stay in a register along the row (dy's row is in L1 for every kx).
                        var a = acc[ky * k + kx];
                        for (int ox = 0; ox < ow; ox += V) a = MultiplyAdd(Vector256.Load(dyRow + ox), Vector256.Load(src + ox + kx), a);
                        acc[ky * k + kx] = a;
                    }
                }
            }
        }
        for (int i = 0; i < k * k; i++) dw[i] = Sum(acc[i]);
    }

    static void WeightChannelScalar(float* dy, float* x, float* dw, ConvShape s, int c)
    {
        int k = s.Kernel, oh = s.OutHeight, ow = s.OutWidth;
        for (int wi = 0; wi < k * k; wi++)
        {
            int kx = wi % k, ky = wi / k;
            int oyFirst = Conv.FirstOutput(s.Pad, ky, s.StrideH), oyEnd = Conv.EndOutput(s.Height, s.Pad, ky, s.StrideH, oh);
            int oxFirst = Conv.FirstOutput(s.Pad, kx, s.StrideW), oxEnd = Conv.EndOutput(s.Width, s.Pad, kx, s.StrideW, ow);
            float sum = 0f;
            for (int b = 0; b < s.Batch; b++)
            {
                long bc = (long)b * s.InChannels + c;
                for (int oy = oyFirst; oy < oyEnd; oy++)
                {
                    float* dr = dy + (bc * oh + oy) * ow, xr = x + (bc * s.Height + oy * s.StrideH - s.Pad + ky) * s.Width - s.Pad + kx;
                    for (int ox = oxFirst; ox < oxEnd; ox++) sum += dr[ox] * xr[(long)ox * s.StrideW];
                }
            }
            dw[wi] = sum;
        }
    }
}
