using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU;

namespace Crnn.Kernels;

/// <summary>
/// The CPU path of <see cref="Gemm"/>: the CPU accelerator runs kernels as scalar .NET code, so on it the
/// product runs here instead, on the host, straight on the accelerator's memory (zero copy). Classic
/// packed GEMM: C is cut into MC×NC blocks spread over the cores (HostTeam); each block packs
/// KC-deep slices of A (MR-row panels) and B (NR-column panels) contiguously and runs an MR×NR register
/// micro-kernel (AVX-512 when present: two NR panels side by side, 6×32; AVX2 + FMA: 6×16; Vector128 otherwise)
/// into a block-local accumulator.
/// <para>
/// Deterministic by construction: every element of C is one chain acc = acc + a·b over batch entries, then k,
/// in order, owned by one task. Blocks, KC slices and the thread count change only where that chain pauses
/// (the accumulator is stored and reloaded as float, exactly), so results do not depend on them.
/// </para>
/// </summary>
internal static unsafe partial class HostGemm
{
    const int MR = 6, NR = 16, KC = 256, MC = 96, NC = 192;
    /// <summary>Below this many flops a parallel loop costs more than it saves.</summary>
    const long SerialFlops = 1 << 20;

    [ThreadStatic] static float[]? t_packA, t_packB, t_acc;

    /// <summary>The micro-kernels this CPU runs, widest first; tests pick each in turn.</summary>
    internal static readonly HostKernel[] Supported =
        [.. new[] { HostKernel.Avx512, HostKernel.Avx2, HostKernel.Portable }.Where(k => k switch
        {
            HostKernel.Avx512 => Avx512F.IsSupported,
            HostKernel.Avx2 => Fma.IsSupported && Avx2.IsSupported,
            _ => true,
        })];

    /// <summary>The micro-kernel that runs: the widest the CPU has. The FMA kernels give the same bits (one fused
    /// multiply-add per k in the same order); the portable one rounds the product separately.</summary>
    internal static HostKernel Kernel = Supported[0];

    /// <summary>C = alpha·op(A)·op(B) + beta·C with the full <see cref="GemmShape"/> semantics; sizes already validated.</summary>
    public static void Run(float* a, float* b, float* c, GemmShape s) => Run(a, b, c, s, default);

    /// <summary>The same, then <paramref name="epilogue"/> on each element as it is written (inference: BatchNorm
    /// and the activation cost no second pass over C). <paramref name="packed"/>: one operand packed in advance. Not <paramref name="parallel"/>: on the
    /// calling thread only (the caller already spreads the work over the cores). <paramref name="scaleB"/> ([Batch, K]):
    /// B's row k of image i taken times scaleB[i·K + k] (squeeze-excite's gates), only where <see cref="ScalesB"/>.</summary>
    public static void Run(float* a, float* b, float* c, GemmShape s, HostEpilogue epilogue, bool parallel = true, PackedOperand? packed = null,
        float* scaleB = null)
    {
        if (packed != null) packed.Check(s);
        if (InPlace.FitsColumns(s, epilogue, packed)) { InPlace.RunColumns(a, b, c, s, epilogue, packed!, parallel, scaleB); return; }
        if (scaleB != null) throw new ArgumentException("scaling B's rows needs the AVX-512 product with packed A (HostGemm.ScalesB)");
        if (!parallel && InPlace.RowsWriter(s, epilogue, packed) is { } rowsWriter) { InPlace.RunRows(a, c, s, rowsWriter, packed!); return; }
        var columns = Columns.Of(s);
        int outputs = columns.Merged || s.SumBatches != 0 ? 1 : s.Batch;
        // Smaller blocks when the product is small but worth spreading, so every core gets work (the result does not
        // change): narrower column blocks first (each block packs only its own columns of B), then fewer rows (each row
        // block packs the same columns again). One that runs on one core keeps whole blocks (the linear head at batch 1
        // packed its B five times over).
        parallel &= (long)s.M * s.N * s.K * s.Batch * 2 >= SerialFlops && HostTeam.Cores > 1;
        int mc = MC, nc = NC, cores = HostTeam.Cores;
        long Tasks() => (long)outputs * ((s.M + mc - 1) / mc) * ((columns.Count + nc - 1) / nc);
        while (parallel && nc > 2 * NR && Tasks() < 4 * cores) nc -= 2 * NR;
        while (parallel && mc > MR && Tasks() < 4 * cores) mc /= 2;
        int blocksM = (s.M + mc - 1) / mc, blocksN = (columns.Count + nc - 1) / nc;
        long tasks = (long)outputs * blocksM * blocksN;
        bool serial = !parallel || tasks == 1;
        // B packed in advance, A read by several column blocks: A packed once for all of them (each block would pack
        // its rows again; the LSTM's input projection against its packed weights).
        float* sharedA = packed is { IsA: false } && blocksN > 1 && s.Batch == 1 ? PackShared(a, s, mc, blocksM, serial) : null;
        if (serial)
        {
            for (long t = 0; t < tasks; t++) Block(a, b, c, s, columns, epilogue, packed, sharedA, mc, nc, blocksM, blocksN, t);
            return;
        }
        nint pa = (nint)a, pb = (nint)b, pc = (nint)c, ps = (nint)sharedA; // lambdas cannot capture pointers
        HostTeam.For(tasks, t => Block((float*)pa, (float*)pb, (float*)pc, s, columns, epilogue, packed, (float*)ps, mc, nc, blocksM, blocksN, t));
    }

    [ThreadStatic] static float[]? t_sharedA;

    /// <summary>All of A packed as <see cref="PackWhole"/> lays it out (slice k0 from k0 whole padded columns in), one
    /// row block per task; into the calling thread's scratch, read by every task of the product that follows.</summary>
    static float* PackShared(float* a, in GemmShape s, int mc, int blocksM, bool serial)
    {
        int paddedM = (s.M + MR - 1) / MR * MR, m = s.M, k = s.K, am = s.AM, ak = s.AK;
        float* dst = HostMemory.Scratch(ref t_sharedA, paddedM * k);
        nint pa = (nint)a, pd = (nint)dst;
        void Rows(long block)
        {
            int m0 = (int)block * mc, rows = Math.Min(mc, m - m0);
            for (int k0 = 0; k0 < k; k0 += KC)
            {
                int kc = Math.Min(KC, k - k0);
                PackA((float*)pa + (long)m0 * am + (long)k0 * ak, am, ak, rows, kc, (float*)pd + (long)k0 * paddedM + (long)m0 * kc);
            }
        }
        if (serial) for (int i = 0; i < blocksM; i++) Rows(i);
        else HostTeam.For(blocksM, Rows);
        return dst;
    }

    /// <summary>Whether a product on the calling thread with this packed B reads A's rows in place, one row as cheaply as
    /// many (<see cref="InPlace.RunRows"/>): the LSTM's recurrent product of one or two sequences.</summary>
    public static bool RowsInPlace(PackedOperand? packed) => Kernel == HostKernel.Avx512 && packed is { IsA: false };

    /// <summary>Whether a product of this shape with A packed in advance and an epilogue can scale B's rows as it reads
    /// them (<see cref="Run(float*, float*, float*, GemmShape, HostEpilogue, bool, PackedOperand?, float*)"/>'s scaleB).</summary>
    public static bool ScalesB(in GemmShape s) => InPlace.ColumnsShapeFits(s);

    /// <summary>
    /// The columns C is cut into. A batch that shares A (a 1×1 convolution's weights, stride 0) over row-major
    /// B and C runs as one product whose columns are every image's in turn (Batch·N): an image has only 100–800
    /// positions, so per image the last 32-column panel pair and the last NC block are mostly empty.
    /// </summary>
    readonly record struct Columns(int Count, bool Merged)
    {
        public static Columns Of(in GemmShape s) =>
            s.Batch > 1 && s.SumBatches == 0 && s.StrideA == 0 && s.BN == 1 ? new(s.N * s.Batch, true) : new(s.N, false);
    }

    /// <summary>One mc×NC block of one output matrix: every batch entry it sums and every KC slice of K. The last
    /// slice writes C: the AVX-512 kernel's whole 12×32 and 6×32 tiles straight from its registers through the epilogue
    /// (<see cref="Output.Tile"/>), the other tiles from the accumulator.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Block(float* a, float* b, float* c, in GemmShape s, Columns columns, HostEpilogue epilogue, PackedOperand? packed, float* sharedA,
        int mc, int nc, int blocksM, int blocksN, long task)
    {
        int ob = (int)(task / ((long)blocksM * blocksN)), rem = (int)(task % ((long)blocksM * blocksN));
        int m0 = rem / blocksN * mc, n0 = rem % blocksN * nc;
        int mLen = Math.Min(mc, s.M - m0), nLen = Math.Min(nc, columns.Count - n0);
        int mPanels = (mLen + MR - 1) / MR, nPanels = (nLen + NR - 1) / NR, ldAcc = nPanels * NR;
        float* packA = HostMemory.Scratch(ref t_packA, MC * KC), packB = HostMemory.Scratch(ref t_packB, NC * KC), acc = HostMemory.Scratch(ref t_acc, MC * NC);
        // beta 0 never reads C, so an uninitialized (NaN) output is fine.
        HostEpilogue? writer = epilogue.Active ? epilogue : s.Beta == 0f ? HostEpilogue.Scaled(s.Alpha) : null;
        var epilogueOrScale = writer.GetValueOrDefault();
        int step = Kernel == HostKernel.Avx512 ? 2 : 1;
        var block = new Output(c, s, columns, writer, ob, m0, n0);
        if (s.K == 0) // the product is zero
        {
            new Span<float>(acc, mPanels * MR * ldAcc).Clear();
            for (int i = 0; i < mLen; i++) block.WriteRow(acc + i * ldAcc, i, 0, nLen);
            return;
        }

        bool accumulate = false;
        int bFirst = s.SumBatches != 0 || columns.Merged ? 0 : ob, bEnd = s.SumBatches != 0 ? s.Batch : bFirst + 1;
        for (int bi = bFirst; bi < bEnd; bi++)
        {
            float* ab = a + (long)bi * s.StrideA + (long)m0 * s.AM, bb = b + (long)bi * s.StrideB + (long)n0 * s.BN;
            for (int k0 = 0; k0 < s.K; k0 += KC)
            {
                int kc = Math.Min(KC, s.K - k0);
                bool last = bi == bEnd - 1 && k0 + kc == s.K;
                // A weight matrix packed in advance is read in place; the other operand is packed here.
                float* pa = packed is { IsA: true } ? packed.Panels(k0, m0)
                    : sharedA != null ? sharedA + (long)k0 * ((s.M + MR - 1) / MR * MR) + (long)m0 * kc
                    : PackA(ab + (long)k0 * s.AK, s.AM, s.AK, mLen, kc, packA);
                float* pb = packed is { IsA: false } ? packed.Panels(k0, n0)
                    : columns.Merged ? PackImageColumns(b + (long)k0 * s.BK, s, n0, nLen, kc, packB)
                    : PackB(bb + (long)k0 * s.BK, s.BK, s.BN, nLen, kc, packB);
                // One B panel (kc×NR; two for AVX-512) stays in L1 while the A panels stream past it.
                for (int q = 0; q < nPanels; q += step)
                {
                    bool pair = q + 1 < nPanels;
                    int j0 = q * NR, width = Math.Min(step * NR, nLen - j0);
                    for (int p = 0; p < mPanels; p++)
                    {
                        int i0 = p * MR, height = Math.Min(MR, mLen - i0);
                        float* tile = acc + i0 * ldAcc + j0, pap = pa + p * MR * kc, pbq = pb + q * NR * kc;
                        // AVX-512 on a whole pair of B panels: two A panels at a time where there are two (12×32), the last
                        // slice straight into C where the tile's target allows.
                        TileTarget direct = default;
                        if (pair && step == 2 && width == 2 * NR && (!last || block.Tile(i0, j0, out direct)))
                        {
                            if (p + 1 < mPanels)
                            {
                                MicroAvx512Tall(pap, pbq, pbq + NR * kc, NR, kc, tile, ldAcc, accumulate, direct, s.Ldc, epilogueOrScale, m0 + i0,
                                    Math.Min(2 * MR, mLen - i0));
                                p++; // and the next panel with it
                            }
                            else MicroAvx512(pap, pbq, pbq + NR * kc, NR, kc, tile, ldAcc, accumulate, direct, s.Ldc, epilogueOrScale, m0 + i0, height);
                        }
                        else
                        {
                            Micro(pap, pbq, kc, tile, ldAcc, accumulate, pair);
                            if (last) for (int i = 0; i < height; i++) block.WriteRow(tile + i * ldAcc, i0 + i, j0, width);
                        }
                    }
                }
                accumulate = true;
            }
        }
    }

    /// <summary>Where a block's results go in C; a merged block's columns run across images (<see cref="Columns"/>).</summary>
    readonly struct Output(float* c, GemmShape s, Columns columns, HostEpilogue? writer, int matrix, int m0, int n0)
    {
        /// <summary>Where the 32 columns from block column j of block row i go in C: one output matrix, or the end of
        /// one image's and the start of the next's (merged columns, an image of at least 32); false without a writer.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Tile(int i, int j, out TileTarget target)
        {
            target = default;
            if (writer == null) return false;
            if (!columns.Merged)
            {
                target = new(c + (long)matrix * s.StrideC + (long)(m0 + i) * s.Ldc + n0 + j, null, 2 * NR);
                return true;
            }
            int image = (n0 + j) / s.N, position = (n0 + j) % s.N, split = Math.Min(s.N - position, 2 * NR);
            if (split < 2 * NR && s.N < 2 * NR) return false;
            float* row = c + (long)(m0 + i) * s.Ldc;
            target = new(row + (long)image * s.StrideC + position, split < 2 * NR ? row + (long)(image + 1) * s.StrideC : null, split);
            return true;
        }

        /// <summary>Writes the accumulated values at <paramref name="src"/> to block row i, columns [j, j + n): through
        /// the epilogue (alpha·acc without one), or as alpha·acc + beta·C; a merged block one piece per image.</summary>
        public void WriteRow(float* src, int i, int j, int n)
        {
            for (int done = 0; done < n;)
            {
                int col = n0 + j + done, target = matrix, position = col, length = n - done;
                if (columns.Merged) (target, position, length) = (col / s.N, col % s.N, Math.Min(length, s.N - col % s.N));
                float* dst = c + (long)target * s.StrideC + (long)(m0 + i) * s.Ldc + position, from = src + done;
                if (writer is { } w) w.Write(from, dst, length, m0 + i);
                else for (int t = 0; t < length; t++) dst[t] = s.Alpha * from[t] + s.Beta * dst[t];
                done += length;
            }
        }
    }

    /// <summary>A 6×32 tile's place in C: columns [0, Split) of each row from <see cref="First"/>, the rest from
    /// <see cref="Second"/> (the next image's row; rows of both are Ldc apart), or nowhere when it is null (past C's end).</summary>
    internal readonly struct TileTarget(float* first, float* second, int split)
    {
        public float* First => first;
        public float* Second => second;
        public int Split => split;
    }

    /// <summary><see cref="PackB"/> for merged columns (<see cref="Columns"/>): k [0, kc) × columns [n0, n0 + nLen)
    /// of the images side by side, image by image (an image's columns are contiguous in its row-major B).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float* PackImageColumns(float* b, in GemmShape s, int n0, int nLen, int kc, float* dst)
    {
        if (nLen % NR != 0) new Span<float>(dst + nLen / NR * NR * kc, NR * kc).Clear(); // zero-padded last panel
        for (int j = 0; j < nLen;)
        {
            int image = (n0 + j) / s.N, position = (n0 + j) % s.N, length = Math.Min(nLen - j, s.N - position);
            PackRowMajorRun(b + (long)image * s.StrideB + position, s.BK, j, length, kc, dst);
            j += length;
        }
        return dst;
    }

    /// <summary>Packs rows [0, mLen) × k [0, kc) of A as MR-row panels, k-major inside a panel, zero-padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float* PackA(float* a, int am, int ak, int mLen, int kc, float* dst)
    {
        float* start = dst;
        for (int p = 0; p < mLen; p += MR, dst += MR * kc)
        {
            int rows = Math.Min(MR, mLen - p);
            if (rows < MR) new Span<float>(dst, MR * kc).Clear();
            // Walk the source along its unit stride.
            if (ak == 1)
                for (int r = 0; r < rows; r++) { float* src = a + (long)(p + r) * am; for (int k = 0; k < kc; k++) dst[k * MR + r] = src[k]; }
            else
                for (int k = 0; k < kc; k++) { float* src = a + (long)k * ak + (long)p * am; for (int r = 0; r < rows; r++) dst[k * MR + r] = src[(long)r * am]; }
        }
        return start;
    }

    /// <summary>Packs k [0, kc) × columns [0, nLen) of B as NR-column panels, k-major inside a panel, zero-padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float* PackB(float* b, int bk, int bn, int nLen, int kc, float* dst)
    {
        if (bn == 1)
        {
            if (nLen % NR != 0) new Span<float>(dst + nLen / NR * NR * kc, NR * kc).Clear(); // zero-padded last panel
            PackRowMajorRun(b, bk, 0, nLen, kc, dst);
            return dst;
        }
        for (int q = 0; q < nLen; q += NR)
        {
            float* panel = dst + q * kc;
            int cols = Math.Min(NR, nLen - q);
            if (cols < NR) new Span<float>(panel, NR * kc).Clear();
            for (int j = 0; j < cols; j++) { float* src = b + (long)(q + j) * bn; for (int k = 0; k < kc; k++) panel[k * NR + j] = src[(long)k * bk]; }
        }
        return dst;
    }

    /// <summary>Columns [0, count) of a row-major B (rows <paramref name="bk"/> apart), k [0, kc), into panel columns
    /// [t0, t0 + count) of <paramref name="dst"/> (padding left to the caller): whole 16-column panels two vectors per
    /// k row, panel by panel (each panel written in order); the pieces of a panel before and after them per row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackRowMajorRun(float* b, long bk, int t0, int count, int kc, float* dst)
    {
        int end = t0 + count, wholeFirst = Math.Min(end, (t0 + NR - 1) / NR * NR), wholeEnd = wholeFirst + (end - wholeFirst) / NR * NR;
        PackPiece(b, bk, t0, t0, wholeFirst, kc, dst);
        for (int q = wholeFirst; q < wholeEnd; q += NR)
        {
            float* src = b + (q - t0), to = dst + q * kc;
            for (int k = 0; k < kc; k++)
            {
                Vector256.Store(Vector256.Load(src + k * bk), to + k * NR);
                Vector256.Store(Vector256.Load(src + k * bk + 8), to + k * NR + 8);
            }
        }
        PackPiece(b, bk, t0, wholeEnd, end, kc, dst);
    }

    /// <summary>Columns [first, end) (inside one panel) of the run at <paramref name="b"/> that starts at column t0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackPiece(float* b, long bk, int t0, int first, int end, int kc, float* dst)
    {
        if (first >= end) return;
        float* from = b + (first - t0), to = dst + first / NR * NR * kc + first % NR;
        for (int k = 0; k < kc; k++) new ReadOnlySpan<float>(from + k * bk, end - first).CopyTo(new Span<float>(to + k * NR, end - first));
    }

    /// <summary>Packs all of op(A) (<paramref name="isA"/>) or op(B) as <see cref="Block"/> would, every KC slice,
    /// from the array's first 64-byte boundary (<see cref="HostMemory.Aligned"/>).</summary>
    internal static float[] PackWhole(float* m, int rows, int k, int rowStride, int kStride, bool isA, out int paddedRows)
    {
        int r = isA ? MR : NR;
        paddedRows = (rows + r - 1) / r * r;
        var data = GC.AllocateUninitializedArray<float>(Math.Max(paddedRows * k, 1) + 16, pinned: true);
        float* d = HostMemory.Aligned(data);
        for (int k0 = 0; k0 < k; k0 += KC)
        {
            int kc = Math.Min(KC, k - k0);
            if (isA) PackA(m + (long)k0 * kStride, rowStride, kStride, rows, kc, d + (long)k0 * paddedRows);
            else PackB(m + (long)k0 * kStride, kStride, rowStride, rows, kc, d + (long)k0 * paddedRows);
        }
        return data;
    }

    internal const int SliceDepth = KC;

    /// <summary>The MR×NR block at <paramref name="c"/>, or with <paramref name="pair"/> (AVX-512 only) MR×2NR from two consecutive B panels.</summary>
    static void Micro(float* pa, float* pb, int kc, float* c, int ldc, bool accumulate, bool pair)
    {
        switch (Kernel)
        {
            case HostKernel.Avx512 when pair: MicroAvx512(pa, pb, pb + NR * kc, NR, kc, c, ldc, accumulate); break;
            case HostKernel.Avx512 or HostKernel.Avx2: MicroAvx2(pa, pb, kc, c, ldc, accumulate); break;
            default: MicroPortable(pa, pb, kc, c, ldc, accumulate); break;
        }
    }

    /// <summary>6×32 block in 12 zmm accumulators: per k, two B loads (columns 0–15 from <paramref name="pb0"/>, 16–31 from
    /// <paramref name="pb1"/>, both moving <paramref name="ldb"/> per k: two packed panels, or one 32-column strip of B),
    /// six broadcasts, twelve 16-wide FMAs — twice the AVX2 kernel's work per instruction. With <paramref name="dst"/> the
    /// block's first <paramref name="height"/> rows go through <paramref name="writer"/> (rows from <paramref name="row"/>)
    /// into C instead of back to <paramref name="c"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void MicroAvx512(float* pa, float* pb0, float* pb1, long ldb, int kc, float* c, int ldc, bool accumulate, in TileTarget dst = default,
        int ldDst = 0, in HostEpilogue writer = default, int row = 0, int height = MR)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        float* r0 = c, r1 = c + ldc, r2 = r1 + ldc, r3 = r2 + ldc, r4 = r3 + ldc, r5 = r4 + ldc;
        if (accumulate)
        {
            c00 = Avx512F.LoadVector512(r0); c01 = Avx512F.LoadVector512(r0 + NR);
            c10 = Avx512F.LoadVector512(r1); c11 = Avx512F.LoadVector512(r1 + NR);
            c20 = Avx512F.LoadVector512(r2); c21 = Avx512F.LoadVector512(r2 + NR);
            c30 = Avx512F.LoadVector512(r3); c31 = Avx512F.LoadVector512(r3 + NR);
            c40 = Avx512F.LoadVector512(r4); c41 = Avx512F.LoadVector512(r4 + NR);
            c50 = Avx512F.LoadVector512(r5); c51 = Avx512F.LoadVector512(r5 + NR);
        }
        for (int k = 0; k < kc; k++, pa += MR, pb0 += ldb, pb1 += ldb)
        {
            var b0 = Avx512F.LoadVector512(pb0);
            var b1 = Avx512F.LoadVector512(pb1);
            var x = Vector512.Create(pa[0]);
            c00 = Avx512F.FusedMultiplyAdd(x, b0, c00); c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(pa[1]);
            c10 = Avx512F.FusedMultiplyAdd(x, b0, c10); c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(pa[2]);
            c20 = Avx512F.FusedMultiplyAdd(x, b0, c20); c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(pa[3]);
            c30 = Avx512F.FusedMultiplyAdd(x, b0, c30); c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(pa[4]);
            c40 = Avx512F.FusedMultiplyAdd(x, b0, c40); c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(pa[5]);
            c50 = Avx512F.FusedMultiplyAdd(x, b0, c50); c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
        }
        if (dst.First != null) // the last slice: through the epilogue straight into C, rows [0, height) (the rest is A's zero padding)
        {
            writer.Store(c00, c01, dst, 0, row);
            if (height > 1) writer.Store(c10, c11, dst, ldDst, row + 1);
            if (height > 2) writer.Store(c20, c21, dst, 2L * ldDst, row + 2);
            if (height > 3) writer.Store(c30, c31, dst, 3L * ldDst, row + 3);
            if (height > 4) writer.Store(c40, c41, dst, 4L * ldDst, row + 4);
            if (height > 5) writer.Store(c50, c51, dst, 5L * ldDst, row + 5);
            return;
        }
        Avx512F.Store(r0, c00); Avx512F.Store(r0 + NR, c01);
        Avx512F.Store(r1, c10); Avx512F.Store(r1 + NR, c11);
        Avx512F.Store(r2, c20); Avx512F.Store(r2 + NR, c21);
        Avx512F.Store(r3, c30); Avx512F.Store(r3 + NR, c31);
        Avx512F.Store(r4, c40); Avx512F.Store(r4 + NR, c41);
        Avx512F.Store(r5, c50); Avx512F.Store(r5 + NR, c51);
    }

    /// <summary><see cref="MicroAvx512"/> for two consecutive packed panels of A (12 rows: the second panel MR·kc after the
    /// first) in 24 accumulators: per k two B loads and twelve broadcasts feed 24 multiply-adds (6×32: eight loads for
    /// twelve). The same chain per element, so the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void MicroAvx512Tall(float* pa, float* pb0, float* pb1, long ldb, int kc, float* c, int ldc, bool accumulate, in TileTarget dst,
        int ldDst, in HostEpilogue writer, int row, int height)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default,
            c90 = default, c91 = default, ca0 = default, ca1 = default, cb0 = default, cb1 = default;
        float* qa = pa + MR * kc;
        if (accumulate)
        {
            float* r = c;
            c00 = Vector512.Load(r); c01 = Vector512.Load(r + NR); r += ldc;
            c10 = Vector512.Load(r); c11 = Vector512.Load(r + NR); r += ldc;
            c20 = Vector512.Load(r); c21 = Vector512.Load(r + NR); r += ldc;
            c30 = Vector512.Load(r); c31 = Vector512.Load(r + NR); r += ldc;
            c40 = Vector512.Load(r); c41 = Vector512.Load(r + NR); r += ldc;
            c50 = Vector512.Load(r); c51 = Vector512.Load(r + NR); r += ldc;
            c60 = Vector512.Load(r); c61 = Vector512.Load(r + NR); r += ldc;
            c70 = Vector512.Load(r); c71 = Vector512.Load(r + NR); r += ldc;
            c80 = Vector512.Load(r); c81 = Vector512.Load(r + NR); r += ldc;
            c90 = Vector512.Load(r); c91 = Vector512.Load(r + NR); r += ldc;
            ca0 = Vector512.Load(r); ca1 = Vector512.Load(r + NR); r += ldc;
            cb0 = Vector512.Load(r); cb1 = Vector512.Load(r + NR);
        }
        for (int k = 0; k < kc; k++, pa += MR, qa += MR, pb0 += ldb, pb1 += ldb)
        {
            var b0 = Vector512.Load(pb0);
            var b1 = Vector512.Load(pb1);
            var x = Vector512.Create(pa[0]);
            c00 = Avx512F.FusedMultiplyAdd(x, b0, c00); c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(pa[1]);
            c10 = Avx512F.FusedMultiplyAdd(x, b0, c10); c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(pa[2]);
            c20 = Avx512F.FusedMultiplyAdd(x, b0, c20); c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(pa[3]);
            c30 = Avx512F.FusedMultiplyAdd(x, b0, c30); c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(pa[4]);
            c40 = Avx512F.FusedMultiplyAdd(x, b0, c40); c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(pa[5]);
            c50 = Avx512F.FusedMultiplyAdd(x, b0, c50); c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(qa[0]);
            c60 = Avx512F.FusedMultiplyAdd(x, b0, c60); c61 = Avx512F.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(qa[1]);
            c70 = Avx512F.FusedMultiplyAdd(x, b0, c70); c71 = Avx512F.FusedMultiplyAdd(x, b1, c71);
            x = Vector512.Create(qa[2]);
            c80 = Avx512F.FusedMultiplyAdd(x, b0, c80); c81 = Avx512F.FusedMultiplyAdd(x, b1, c81);
            x = Vector512.Create(qa[3]);
            c90 = Avx512F.FusedMultiplyAdd(x, b0, c90); c91 = Avx512F.FusedMultiplyAdd(x, b1, c91);
            x = Vector512.Create(qa[4]);
            ca0 = Avx512F.FusedMultiplyAdd(x, b0, ca0); ca1 = Avx512F.FusedMultiplyAdd(x, b1, ca1);
            x = Vector512.Create(qa[5]);
            cb0 = Avx512F.FusedMultiplyAdd(x, b0, cb0); cb1 = Avx512F.FusedMultiplyAdd(x, b1, cb1);
        }
        if (dst.First != null) // the last slice: through the epilogue into C, rows [0, height) (A's zero padding after)
        {
            writer.Store(c00, c01, dst, 0, row);
            writer.Store(c10, c11, dst, ldDst, row + 1);
            writer.Store(c20, c21, dst, 2L * ldDst, row + 2);
            writer.Store(c30, c31, dst, 3L * ldDst, row + 3);
            writer.Store(c40, c41, dst, 4L * ldDst, row + 4);
            writer.Store(c50, c51, dst, 5L * ldDst, row + 5);
            if (height > 6) writer.Store(c60, c61, dst, 6L * ldDst, row + 6);
            if (height > 7) writer.Store(c70, c71, dst, 7L * ldDst, row + 7);
            if (height > 8) writer.Store(c80, c81, dst, 8L * ldDst, row + 8);
            if (height > 9) writer.Store(c90, c91, dst, 9L * ldDst, row + 9);
            if (height > 10) writer.Store(ca0, ca1, dst, 10L * ldDst, row + 10);
            if (height > 11) writer.Store(cb0, cb1, dst, 11L * ldDst, row + 11);
            return;
        }
        float* w = c;
        c00.Store(w); c01.Store(w + NR); w += ldc;
        c10.Store(w); c11.Store(w + NR); w += ldc;
        c20.Store(w); c21.Store(w + NR); w += ldc;
        c30.Store(w); c31.Store(w + NR); w += ldc;
        c40.Store(w); c41.Store(w + NR); w += ldc;
        c50.Store(w); c51.Store(w + NR); w += ldc;
        c60.Store(w); c61.Store(w + NR); w += ldc;
        c70.Store(w); c71.Store(w + NR); w += ldc;
        c80.Store(w); c81.Store(w + NR); w += ldc;
        c90.Store(w); c91.Store(w + NR); w += ldc;
        ca0.Store(w); ca1.Store(w + NR); w += ldc;
        cb0.Store(w); cb1.Store(w + NR);
    }

    /// <summary>6×16 block in 12 ymm accumulators: per k, two B loads, six broadcasts, twelve FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void MicroAvx2(float* pa, float* pb, int kc, float* c, int ldc, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        float* r0 = c, r1 = c + ldc, r2 = r1 + ldc, r3 = r2 + ldc, r4 = r3 + ldc, r5 = r4 + ldc;
        if (accumulate)
        {
            c00 = Avx.LoadVector256(r0); c01 = Avx.LoadVector256(r0 + 8);
            c10 = Avx.LoadVector256(r1); c11 = Avx.LoadVector256(r1 + 8);
            c20 = Avx.LoadVector256(r2); c21 = Avx.LoadVector256(r2 + 8);
            c30 = Avx.LoadVector256(r3); c31 = Avx.LoadVector256(r3 + 8);
            c40 = Avx.LoadVector256(r4); c41 = Avx.LoadVector256(r4 + 8);
            c50 = Avx.LoadVector256(r5); c51 = Avx.LoadVector256(r5 + 8);
        }
        for (int k = 0; k < kc; k++, pa += MR, pb += NR)
        {
            var b0 = Avx.LoadVector256(pb);
            var b1 = Avx.LoadVector256(pb + 8);
            var x = Avx.BroadcastScalarToVector256(pa);
            c00 = Fma.MultiplyAdd(x, b0, c00); c01 = Fma.MultiplyAdd(x, b1, c01);
            x = Avx.BroadcastScalarToVector256(pa + 1);
            c10 = Fma.MultiplyAdd(x, b0, c10); c11 = Fma.MultiplyAdd(x, b1, c11);
            x = Avx.BroadcastScalarToVector256(pa + 2);
            c20 = Fma.MultiplyAdd(x, b0, c20); c21 = Fma.MultiplyAdd(x, b1, c21);
            x = Avx.BroadcastScalarToVector256(pa + 3);
            c30 = Fma.MultiplyAdd(x, b0, c30); c31 = Fma.MultiplyAdd(x, b1, c31);
            x = Avx.BroadcastScalarToVector256(pa + 4);
            c40 = Fma.MultiplyAdd(x, b0, c40); c41 = Fma.MultiplyAdd(x, b1, c41);
            x = Avx.BroadcastScalarToVector256(pa + 5);
            c50 = Fma.MultiplyAdd(x, b0, c50); c51 = Fma.MultiplyAdd(x, b1, c51);
        }
        Avx.Store(r0, c00); Avx.Store(r0 + 8, c01);
        Avx.Store(r1, c10); Avx.Store(r1 + 8, c11);
        Avx.Store(r2, c20); Avx.Store(r2 + 8, c21);
        Avx.Store(r3, c30); Avx.Store(r3 + 8, c31);
        Avx.Store(r4, c40); Avx.Store(r4 + 8, c41);
        Avx.Store(r5, c50); Avx.Store(r5 + 8, c51);
    }

    /// <summary>Fallback for any hardware (Vector128 is emulated where not accelerated): one row of 16 at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void MicroPortable(float* pa, float* pb, int kc, float* c, int ldc, bool accumulate)
    {
        for (int r = 0; r < MR; r++)
        {
            float* row = c + r * ldc;
            Vector128<float> v0 = default, v1 = default, v2 = default, v3 = default;
            if (accumulate) { v0 = Vector128.Load(row); v1 = Vector128.Load(row + 4); v2 = Vector128.Load(row + 8); v3 = Vector128.Load(row + 12); }
            float* a = pa + r, b = pb;
            for (int k = 0; k < kc; k++, a += MR, b += NR)
            {
                var x = Vector128.Create(*a);
                v0 += x * Vector128.Load(b); v1 += x * Vector128.Load(b + 4);
                v2 += x * Vector128.Load(b + 8); v3 += x * Vector128.Load(b + 12);
            }
            v0.Store(row); v1.Store(row + 4); v2.Store(row + 8); v3.Store(row + 12);
        }
    }
}

/// <summary>The host GEMM's micro-kernels.</summary>
internal enum HostKernel { Portable, Avx2, Avx512 }

/// <summary>
/// What a GEMM does to each element of C as it writes it, for inference: BatchNorm of its row (an output
/// channel) as x·scale + offset (<see cref="ChannelNorm"/>), or just + offset (a bias) when
/// <paramref name="rowScale"/> is null, then the activation (an <see cref="Activation"/> code). Only for alpha 1, beta 0.
/// Without any of them (<see cref="Scaled"/>) the GEMM's own alpha·acc for beta 0.
/// </summary>
internal readonly unsafe struct HostEpilogue(float* rowScale, float* rowOffset, int activation, float scale = 1f, bool adds = false, long addendOffset = 0)
{
    public HostEpilogue(ChannelNorm norm, Activation act) : this(HostMemory.Pointer(norm.Scale), HostMemory.Pointer(norm.Offset), (int)act) { }

    /// <summary>alpha·x, as x·alpha + 0 (one rounding, the same bits whichever way C is written).</summary>
    public static HostEpilogue Scaled(float alpha) => new(null, null, 0, alpha);

    /// <summary>C = x + C (alpha 1, beta 1: the LSTM's recurrent product added to the input projection), one rounding
    /// as alpha·x + beta·C has.</summary>
    public static HostEpilogue AddedToC => new(null, null, 0, 1f, adds: true);

    /// <summary>This epilogue, then + the element of <paramref name="addend"/> at C's index (a residual shortcut: the same
    /// one rounding as adding it in a pass of its own). <paramref name="addend"/> has C's layout.</summary>
    public HostEpilogue Plus(float* addend, float* c) => new(rowScale, rowOffset, activation, scale, adds: true, addend - c);

    public bool Active => rowScale != null || rowOffset != null || activation != 0 || adds;

    float ScaleOf(int row) => rowScale != null ? rowScale[row] : scale;
    float OffsetOf(int row) => rowOffset != null ? rowOffset[row] : 0f;

    public void Write(float* src, float* dst, int n, int row)
    {
        if (!adds) { HostElementwise.ScaleShift(src, dst, n, ScaleOf(row), OffsetOf(row), activation); return; }
        // src is the block's accumulator, done with after this: the epilogue in place, then the addend (C itself for AddedToC).
        HostElementwise.ScaleShift(src, src, n, ScaleOf(row), OffsetOf(row), activation);
        float* addend = dst + addendOffset;
        int i = 0;
        for (; i + 8 <= n; i += 8) (Vector256.Load(src + i) + Vector256.Load(addend + i)).Store(dst + i);
        for (; i < n; i++) dst[i] = src[i] + addend[i];
    }

    /// <summary>32 values of C row <paramref name="row"/> from two registers, at <paramref name="offset"/> from the
    /// tile's targets: the arithmetic of <see cref="Write"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(Vector512<float> v0, Vector512<float> v1, in HostGemm.TileTarget dst, long offset, int row)
    {
        var sv = Vector512.Create(ScaleOf(row));
        var tv = Vector512.Create(OffsetOf(row));
        v0 = HostElementwise.Activate(activation, Avx512F.FusedMultiplyAdd(v0, sv, tv));
        v1 = HostElementwise.Activate(activation, Avx512F.FusedMultiplyAdd(v1, sv, tv));
        float* first = dst.First + offset;
        if (dst.Split == 32)
        {
            if (adds) { v0 += Vector512.Load(first + addendOffset); v1 += Vector512.Load(first + addendOffset + 16); }
            v0.Store(first);
            v1.Store(first + 16);
            return;
        }
        // Columns from Split on start the next image's row (or lie past C's last column): masked stores on both sides of the cut.
        var lanes = Vector512<int>.Indices;
        var split = Vector512.Create(dst.Split);
        var before0 = Vector512.LessThan(lanes, split).AsSingle();
        var before1 = Vector512.LessThan(lanes + Vector512.Create(16), split).AsSingle();
        if (adds)
        {
            float* addend = first + addendOffset;
            var a0 = Avx512F.MaskLoad(addend, before0, Vector512<float>.Zero);
            var a1 = Avx512F.MaskLoad(addend + 16, before1, Vector512<float>.Zero);
            if (dst.Second != null)
            {
                float* next = dst.Second + offset - dst.Split + addendOffset;
                a0 = Avx512F.MaskLoad(next, ~before0, a0);
                a1 = Avx512F.MaskLoad(next + 16, ~before1, a1);
            }
            v0 += a0;
            v1 += a1;
        }
        Avx512F.MaskStore(first, before0, v0);
        Avx512F.MaskStore(first + 16, before1, v1);
        if (dst.Second == null) return;
        float* second = dst.Second + offset - dst.Split;
        Avx512F.MaskStore(second, ~before0, v0);
        Avx512F.MaskStore(second + 16, ~before1, v1);
    }
}

/// <summary>
/// A GEMM operand that does not change between products (inference weights), packed once in the panels the
/// host GEMM reads: every KC slice of K, MR-row panels of A or NR-column panels of B. Products that pass it
/// skip packing that side (the weights of a 1×1 convolution are otherwise packed again for every image).
/// Refresh by packing anew when the weights change.
/// </summary>
public sealed unsafe class PackedOperand
{
    readonly float[] _data;
    readonly int _rows, _k, _paddedRows;

    internal bool IsA { get; }

    PackedOperand(float[] data, int rows, int k, int paddedRows, bool isA) => (_data, _rows, _k, _paddedRows, IsA) = (data, rows, k, paddedRows, isA);

    /// <summary>A [rows, k] (row-major, <paramref name="values"/> from <paramref name="offset"/>) as the GEMM's A.</summary>
    public static PackedOperand RowsAsA(float[] values, int offset, int rows, int k) => Pack(values, offset, rows, k, isA: true);

    /// <summary>W [columns, k] (row-major) as the GEMM's B = Wᵀ [k, columns] (a linear layer's weights).</summary>
    public static PackedOperand RowsAsTransposedB(float[] values, int offset, int columns, int k) => Pack(values, offset, columns, k, isA: false);

    static PackedOperand Pack(float[] values, int offset, int rows, int k, bool isA)
    {
        if (offset < 0 || rows < 1 || k < 1 || offset + (long)rows * k > values.Length)
            throw new ArgumentException($"cannot pack a [{rows}, {k}] matrix at {offset} of {values.Length} values");
        fixed (float* v = values)
        {
            var data = HostGemm.PackWhole(v + offset, rows, k, k, 1, isA, out int padded);
            return new PackedOperand(data, rows, k, padded, isA);
        }
    }

    /// <summary>Rows (A) or columns (B) rounded up to whole panels: slice k0 starts k0 of these panel rows in.</summary>
    internal int PaddedRows => _paddedRows;

    /// <summary>The pinned array of panels (from its first 64-byte boundary).</summary>
    internal float[] Data => _data;

    /// <summary>The panels of slice k0 from row (A) or column (B) <paramref name="first"/>, a multiple of the panel size.</summary>
    internal float* Panels(int k0, int first)
    {
        int kc = Math.Min(HostGemm.SliceDepth, _k - k0);
        // The array is pinned (allocated on the pinned object heap), so the address stays valid.
        return HostMemory.Aligned(_data) + (long)k0 * _paddedRows + (long)first * kc;
    }

    internal void Check(in GemmShape s)
    {
        bool fits = IsA ? s.M == _rows && s.StrideA == 0 && s.AK == 1 && s.AM == _k : s.N == _rows && s.StrideB == 0 && s.BK == 1 && s.BN == _k;
        if (!fits || s.K != _k || s.SumBatches != 0)
            throw new ArgumentException($"the packed {(IsA ? "A" : "B")} [{_rows}, {_k}] does not match GEMM M={s.M} N={s.N} K={s.K}");
    }
}
