using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Crnn.Kernels;

internal static unsafe partial class HostGemm
{
    /// <summary>
    /// Products with one operand packed in advance (inference weights) and the other taken as it lies, on the AVX-512
    /// kernel: each 6×32 tile runs all of K (A's packed slices in turn) before its epilogue writes it to C from the
    /// registers. Every element is the chain of <see cref="Block"/> (acc + a·b over k in order), so the bits are the same.
    /// <list type="bullet">
    /// <item><b>Columns</b>: packed A, row-major B and C through an epilogue (a 1×1 convolution). B is copied 32 columns
    /// at a time (K rows, contiguous) and every row panel of A passes over the copy: B is read once, not once per row
    /// block and K slice as <see cref="Block"/> packs it (a projection 480→80 packed all of B to use it for 80 rows), and
    /// not down its own rows once per panel (that waited on memory: every row a new page and prefetch stream). The columns
    /// run over the images in turn (as <see cref="Columns"/>); a strip that crosses into the next image is copied from
    /// both, C's last partial one zero-padded.</item>
    /// <item><b>Rows</b>: row-major A read in place (six rows, each along its own k), packed B, on the calling thread:
    /// the LSTM's recurrent product each step (a few rows of the sequence, packed again every step before, and β = 1
    /// added in a scalar loop). Not for the large products: there the six rows and B's K×32 both came from L2 for
    /// every tile, and the input projection ran 1.5–3× slower than packing A (<see cref="Block"/>).</item>
    /// </list>
    /// </summary>
    static class InPlace
    {
        const int Strip = 2 * NR;

        [ThreadStatic] static float[]? t_strip;

        public static bool FitsColumns(in GemmShape s, HostEpilogue epilogue, PackedOperand? packed) =>
            packed is { IsA: true } && (epilogue.Active || s.Beta == 0f) && ColumnsShapeFits(s);

        public static bool ColumnsShapeFits(in GemmShape s) =>
            Kernel == HostKernel.Avx512 && s.BN == 1 && s.SumBatches == 0 && s.K > 0 && s.N >= Strip && (s.Batch == 1 || s.StrideA == 0);

        public static void RunColumns(float* a, float* b, float* c, GemmShape s, HostEpilogue epilogue, PackedOperand packed, bool parallel,
            float* scaleB)
        {
            var writer = epilogue.Active ? epilogue : HostEpilogue.Scaled(s.Alpha);
            int strips = (int)(((long)s.Batch * s.N + Strip - 1) / Strip), panels = (s.M + MR - 1) / MR;
            // A task: a run of strips (B's rows read onward) × a run of row panels (all of them unless there are too few
            // strips for the cores; a strip stays near the core while the panels pass). About 8 tasks per core.
            // Row blocks of whole panel pairs (RunStrip's tall tiles).
            int cores = HostTeam.Cores, rowBlocks = parallel ? Math.Clamp(8 * cores / strips, 1, (panels + 1) / 2) : 1;
            int panelsPerBlock = ((panels + rowBlocks - 1) / rowBlocks + 1) / 2 * 2;
            rowBlocks = (panels + panelsPerBlock - 1) / panelsPerBlock;
            int stripsPerTask = parallel ? Math.Max(1, strips / (8 * cores)) : strips, stripBlocks = (strips + stripsPerTask - 1) / stripsPerTask;
            long tasks = (long)stripBlocks * rowBlocks;
            nint pb = (nint)b, pc = (nint)c, ps = (nint)scaleB;
            void Task(long t)
            {
                int first = (int)(t / rowBlocks) * stripsPerTask, p0 = (int)(t % rowBlocks) * panelsPerBlock;
                for (int strip = first; strip < Math.Min(strips, first + stripsPerTask); strip++)
                    RunStrip((float*)pb, (float*)pc, s, writer, packed, strip * Strip, p0, Math.Min(panels, p0 + panelsPerBlock), (float*)ps);
            }
            if (!parallel || tasks == 1 || s.Flops < SerialFlops) for (long t = 0; t < tasks; t++) Task(t);
            else HostTeam.For(tasks, Task);
        }

        /// <summary>Row panels [p0, p1) × the 32 columns from merged column <paramref name="column"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void RunStrip(float* b, float* c, in GemmShape s, in HostEpilogue writer, PackedOperand packed, int column, int p0, int p1,
            float* scaleB)
        {
            int image = column / s.N, position = column % s.N, split = Math.Min(Strip, s.N - position);
            bool next = split < Strip && image + 1 < s.Batch;
            float* strip = CopyStrip(b, s, image, position, split, next, scaleB);
            // Slice by slice of K (A's packed slices; a slice of the strip stays in L1 while the panels pass), the panels'
            // sums kept between slices in a block accumulator; the last slice writes C from the registers.
            float* panelsA = HostMemory.Aligned(packed.Data), acc = s.K > KC ? HostMemory.Scratch(ref t_acc, (p1 - p0) * MR * Strip) : null;
            for (int k0 = 0; k0 < s.K; k0 += KC)
            {
                int kc = Math.Min(KC, s.K - k0);
                float* pb = strip + k0 * Strip;
                // Two panels at a time (24 of the 32 registers accumulate: fewer loads per multiply-add), a last odd one alone.
                for (int p = p0; p < p1; p += 2)
                {
                    int row = p * MR;
                    bool pair = p + 1 < p1;
                    float* pa = panelsA + (long)k0 * packed.PaddedRows + (long)row * kc, tile = acc + (p - p0) * MR * Strip;
                    TileTarget target = default;
                    if (k0 + kc == s.K)
                    {
                        float* first = c + (long)image * s.StrideC + (long)row * s.Ldc + position;
                        target = new TileTarget(first, next ? c + (long)(image + 1) * s.StrideC + (long)row * s.Ldc : null, split);
                    }
                    int height = Math.Min(pair ? 2 * MR : MR, s.M - row);
                    if (pair) MicroAvx512Tall(pa, pb, pb + NR, Strip, kc, tile, Strip, k0 > 0, target, s.Ldc, writer, row, height);
                    else MicroAvx512(pa, pb, pb + NR, Strip, kc, tile, Strip, k0 > 0, target, s.Ldc, writer, row, height);
                }
            }
        }

        /// <summary>The strip's K rows of 32 columns, contiguous: from one image, or the end of one and the start of the next
        /// (<paramref name="next"/>), or zero-padded past the last column; with <paramref name="scaleB"/> each row times its
        /// image's scale (x·g rounded once, as a separate scaling pass stores it).</summary>
        static float* CopyStrip(float* b, in GemmShape s, int image, int position, int split, bool next, float* scaleB)
        {
            float* copy = HostMemory.Scratch(ref t_strip, s.K * Strip), source = b + (long)image * s.StrideB + position;
            float* after = next ? b + (long)(image + 1) * s.StrideB - split : null; // column j of the next image at after + j
            float* scale = scaleB == null ? null : scaleB + (long)image * s.K, scaleAfter = scale == null ? null : scale + s.K;
            var lanes = Vector512<int>.Indices;
            var before0 = Vector512.LessThan(lanes, Vector512.Create(split)).AsSingle();
            var before1 = Vector512.LessThan(lanes + Vector512.Create(NR), Vector512.Create(split)).AsSingle();
            for (int k = 0; k < s.K; k++)
            {
                float* row = source + k * s.BK, to = copy + k * Strip;
                Vector512<float> v0, v1;
                if (split == Strip) (v0, v1) = (Vector512.Load(row), Vector512.Load(row + NR));
                else
                {
                    // Masked loads: nothing is read past either image's columns.
                    v0 = Avx512F.MaskLoad(row, before0, Vector512<float>.Zero);
                    v1 = Avx512F.MaskLoad(row + NR, before1, Vector512<float>.Zero);
                    if (after != null)
                    {
                        float* other = after + k * s.BK;
                        var w0 = Avx512F.MaskLoad(other, ~before0, Vector512<float>.Zero);
                        var w1 = Avx512F.MaskLoad(other + NR, ~before1, Vector512<float>.Zero);
                        if (scale != null) (w0, w1) = (w0 * Vector512.Create(scaleAfter[k]), w1 * Vector512.Create(scaleAfter[k]));
                        if (scale != null) (v0, v1) = (v0 * Vector512.Create(scale[k]), v1 * Vector512.Create(scale[k]));
                        Vector512.ConditionalSelect(before0, v0, w0).Store(to);
                        Vector512.ConditionalSelect(before1, v1, w1).Store(to + NR);
                        continue;
                    }
                }
                if (scale != null) (v0, v1) = (v0 * Vector512.Create(scale[k]), v1 * Vector512.Create(scale[k]));
                v0.Store(to);
                v1.Store(to + NR);
            }
            return copy;
        }

        /// <summary>c[0, n) += a · B for one row a of K against B packed in advance (the LSTM's recurrent product of one
        /// sequence): eight 16-column panels at a time in eight accumulators (eight independent chains, each k's broadcast
        /// shared), then the panels left one by one. Each element is the chain of <see cref="TileRows"/> (acc + a·b over k
        /// in order, then + c), so one row gives the bits of the same row in a larger product.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void AddRowTimesPacked(float* a, float* c, PackedOperand packed, int k, int n)
        {
            float* panelsB = HostMemory.Aligned(packed.Data);
            int panels = (n + NR - 1) / NR, q = 0;
            for (; q + 8 <= panels; q += 8)
            {
                Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
                for (int k0 = 0; k0 < k; k0 += KC)
                {
                    int kc = Math.Min(KC, k - k0);
                    float* pb = panelsB + (long)k0 * packed.PaddedRows + (long)q * NR * kc;
                    long step = NR * kc;
                    for (int i = k0; i < k0 + kc; i++, pb += NR)
                    {
                        var x = Vector512.Create(a[i]);
                        s0 = Avx512F.FusedMultiplyAdd(x, Vector512.Load(pb), s0);
                        s1 = Avx512F.FusedMultiplyAdd(x, Vector512.Load(pb + step), s1);
                        s2 = Avx512F.FusedMultiplyAdd(x, Vector512.Load(pb + 2 * step), s2);
                        s3 = Avx512F.FusedMultiplyAdd(x, Vector512.Load(pb + 3 * step), s3);
                        s4 = Avx512F.FusedMultiplyAdd(x, Vector512.Load(pb + 4 * step), s4);
                        s5 = Avx512F.FusedMultiplyAdd(x, Vector512.Load(pb + 5 * step), s5);
                        s6 = Avx512F.FusedMultiplyAdd(x, Vector512.Load(pb + 6 * step), s6);
                        s7 = Avx512F.FusedMultiplyAdd(x, Vector512.Load(pb + 7 * step), s7);
                    }
                }
                float* row = c + q * NR;
                AddTo(row, s0, n - q * NR); AddTo(row + NR, s1, n - (q + 1) * NR);
                AddTo(row + 2 * NR, s2, n - (q + 2) * NR); AddTo(row + 3 * NR, s3, n - (q + 3) * NR);
                AddTo(row + 4 * NR, s4, n - (q + 4) * NR); AddTo(row + 5 * NR, s5, n - (q + 5) * NR);
                AddTo(row + 6 * NR, s6, n - (q + 6) * NR); AddTo(row + 7 * NR, s7, n - (q + 7) * NR);
            }
            for (; q < panels; q++)
            {
                var sum = Vector512<float>.Zero;
                for (int k0 = 0; k0 < k; k0 += KC)
                {
                    int kc = Math.Min(KC, k - k0);
                    float* pb = panelsB + (long)k0 * packed.PaddedRows + (long)q * NR * kc;
                    for (int i = k0; i < k0 + kc; i++, pb += NR) sum = Avx512F.FusedMultiplyAdd(Vector512.Create(a[i]), Vector512.Load(pb), sum);
                }
                AddTo(c + q * NR, sum, n - q * NR);
            }
        }

        /// <summary>The first <paramref name="count"/> (up to 16) floats at <paramref name="c"/> += v.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void AddTo(float* c, Vector512<float> v, int count)
        {
            if (count >= NR) { (v + Vector512.Load(c)).Store(c); return; }
            var mask = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(count)).AsSingle();
            Avx512F.MaskStore(c, mask, v + Avx512F.MaskLoad(c, mask, Vector512<float>.Zero));
        }

        /// <summary>The writer for a product with a packed B and a row-major A, or null when it does not take this path.</summary>
        public static HostEpilogue? RowsWriter(in GemmShape s, HostEpilogue epilogue, PackedOperand? packed)
        {
            if (!RowsInPlace(packed) || s.AK != 1 || s.Batch != 1 || s.K == 0) return null;
            if (epilogue.Active) return s.Beta == 0f ? epilogue : null;
            return s.Beta == 0f ? HostEpilogue.Scaled(s.Alpha) : s.Alpha == 1f && s.Beta == 1f ? HostEpilogue.AddedToC : null;
        }

        /// <summary>On the calling thread: column pair by column pair (a pair's K×32 of B stays in L1), every row panel; one or
        /// two rows after the whole panels one by one when they are added to C (β = 1: <see cref="RowsWriter"/>'s
        /// <see cref="HostEpilogue.AddedToC"/>; a panel would repeat them up to six times, each row alone reads B again).</summary>
        public static void RunRows(float* a, float* c, GemmShape s, HostEpilogue writer, PackedOperand packed)
        {
            int panelRows = s.Beta == 1f && s.M % MR <= 2 ? s.M / MR * MR : s.M;
            for (int col = 0; col < s.N; col += Strip)
                for (int row = 0; row < panelRows; row += MR)
                    TileRows(a, c, s, writer, packed, row, col);
            for (int row = panelRows; row < s.M; row++) AddRowTimesPacked(a + (long)row * s.AM, c + (long)row * s.Ldc, packed, s.K, s.N);
        }

        /// <summary>Rows [row, row + 6) (those past M repeat the last; they are not written) × columns [col, col + 32)
        /// (past N: the zero padding of B's last panel, or its first panel again; not written) over all of K. The loop of
        /// <see cref="MicroAvx512"/> with A's six rows read where they lie instead of from a packed panel.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void TileRows(float* a, float* c, in GemmShape s, in HostEpilogue writer, PackedOperand packed, int row, int col)
        {
            int height = Math.Min(MR, s.M - row), last = height - 1;
            long lda = s.AM;
            float* r0 = a + row * lda, r1 = r0 + Math.Min(1, last) * lda, r2 = r0 + Math.Min(2, last) * lda,
                r3 = r0 + Math.Min(3, last) * lda, r4 = r0 + Math.Min(4, last) * lda, r5 = r0 + Math.Min(5, last) * lda;
            bool second = col + NR < s.N;
            float* panelsB = HostMemory.Aligned(packed.Data);
            Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            for (int k0 = 0; k0 < s.K; k0 += KC)
            {
                int kc = Math.Min(KC, s.K - k0);
                float* pb0 = panelsB + (long)k0 * packed.PaddedRows + (long)col * kc, pb1 = second ? pb0 + NR * kc : pb0;
                for (int k = k0; k < k0 + kc; k++, pb0 += NR, pb1 += NR)
                {
                    var b0 = Avx512F.LoadVector512(pb0);
                    var b1 = Avx512F.LoadVector512(pb1);
                    var x = Vector512.Create(r0[k]);
                    c00 = Avx512F.FusedMultiplyAdd(x, b0, c00); c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
                    x = Vector512.Create(r1[k]);
                    c10 = Avx512F.FusedMultiplyAdd(x, b0, c10); c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
                    x = Vector512.Create(r2[k]);
                    c20 = Avx512F.FusedMultiplyAdd(x, b0, c20); c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
                    x = Vector512.Create(r3[k]);
                    c30 = Avx512F.FusedMultiplyAdd(x, b0, c30); c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
                    x = Vector512.Create(r4[k]);
                    c40 = Avx512F.FusedMultiplyAdd(x, b0, c40); c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
                    x = Vector512.Create(r5[k]);
                    c50 = Avx512F.FusedMultiplyAdd(x, b0, c50); c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
                }
            }
            var target = new TileTarget(c + (long)row * s.Ldc + col, null, Math.Min(Strip, s.N - col));
            long ldc = s.Ldc;
            writer.Store(c00, c01, target, 0, row);
            if (height > 1) writer.Store(c10, c11, target, ldc, row + 1);
            if (height > 2) writer.Store(c20, c21, target, 2 * ldc, row + 2);
            if (height > 3) writer.Store(c30, c31, target, 3 * ldc, row + 3);
            if (height > 4) writer.Store(c40, c41, target, 4 * ldc, row + 4);
            if (height > 5) writer.Store(c50, c51, target, 5 * ldc, row + 5);
        }
    }
}
