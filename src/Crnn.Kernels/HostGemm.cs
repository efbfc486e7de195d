using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU;

namespace Crnn.Kernels;

/// <summary>
/// The CPU path of <see cref="Gemm"/>: the CPU accelerator runs kernels as scalar .NET code, so on it the
/// product runs here instead, on the host, straight on the accelerator's memory (zero copy). Classic
/// packed GEMM: C is cut into MC×NC blocks spread over the cores with Parallel.For; each block packs
/// KC-deep slices of A (MR-row panels) and B (NR-column panels) contiguously and runs an MR×NR register
/// micro-kernel (AVX2 + FMA when present, Vector128 otherwise) into a block-local accumulator.
/// <para>
/// Deterministic by construction: every element of C is one chain acc = acc + a·b over batch entries, then k,
/// in order, owned by one task. Blocks, KC slices and the thread count change only where that chain pauses
/// (the accumulator is stored and reloaded as float, exactly), so results do not depend on them.
/// </para>
/// </summary>
internal static unsafe class HostGemm
{
    const int MR = 6, NR = 16, KC = 256, MC = 96, NC = 192;
    /// <summary>Below this many flops Parallel.For costs more than it saves.</summary>
    const long SerialFlops = 1 << 20;

    [ThreadStatic] static float[]? t_packA, t_packB, t_acc;

    /// <summary>Whether the AVX2 + FMA micro-kernel runs; tests turn it off to check the portable one.</summary>
    internal static bool UseAvx2 = Fma.IsSupported && Avx2.IsSupported;

    /// <summary>C = alpha·op(A)·op(B) + beta·C with the full <see cref="GemmShape"/> semantics; sizes already validated.</summary>
    public static void Run(float* a, float* b, float* c, GemmShape s)
    {
        int outputs = s.SumBatches != 0 ? 1 : s.Batch;
        int blocksN = (s.N + NC - 1) / NC;
        // Smaller row blocks when the product is small, so every core gets work (the result does not change).
        int mc = MC;
        while (mc > MR && (long)outputs * ((s.M + mc - 1) / mc) * blocksN < 4 * Environment.ProcessorCount) mc /= 2;
        int blocksM = (s.M + mc - 1) / mc;
        long tasks = (long)outputs * blocksM * blocksN;
        if (tasks == 1 || (long)s.M * s.N * s.K * s.Batch * 2 < SerialFlops)
        {
            for (long t = 0; t < tasks; t++) Block(a, b, c, s, mc, blocksM, blocksN, t);
            return;
        }
        nint pa = (nint)a, pb = (nint)b, pc = (nint)c; // lambdas cannot capture pointers
        Parallel.For(0, tasks, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
            t => Block((float*)pa, (float*)pb, (float*)pc, s, mc, blocksM, blocksN, t));
    }

    /// <summary>One mc×NC block of one output matrix: every batch entry it sums and every KC slice of K.</summary>
    static void Block(float* a, float* b, float* c, in GemmShape s, int mc, int blocksM, int blocksN, long task)
    {
        int ob = (int)(task / ((long)blocksM * blocksN)), rem = (int)(task % ((long)blocksM * blocksN));
        int m0 = rem / blocksN * mc, n0 = rem % blocksN * NC;
        int mLen = Math.Min(mc, s.M - m0), nLen = Math.Min(NC, s.N - n0);
        int mPanels = (mLen + MR - 1) / MR, nPanels = (nLen + NR - 1) / NR, ldAcc = nPanels * NR;
        float* packA = HostMemory.Scratch(ref t_packA, MC * KC), packB = HostMemory.Scratch(ref t_packB, NC * KC), acc = HostMemory.Scratch(ref t_acc, MC * NC);

        bool accumulate = false;
        int bFirst = s.SumBatches != 0 ? 0 : ob, bEnd = s.SumBatches != 0 ? s.Batch : ob + 1;
        for (int bi = bFirst; bi < bEnd; bi++)
        {
            float* ab = a + (long)bi * s.StrideA + (long)m0 * s.AM, bb = b + (long)bi * s.StrideB + (long)n0 * s.BN;
            for (int k0 = 0; k0 < s.K; k0 += KC)
            {
                int kc = Math.Min(KC, s.K - k0);
                PackA(ab + (long)k0 * s.AK, s.AM, s.AK, mLen, kc, packA);
                PackB(bb + (long)k0 * s.BK, s.BK, s.BN, nLen, kc, packB);
                // One B panel (kc×NR) stays in L1 while the A panels stream past it.
                for (int q = 0; q < nPanels; q++)
                    for (int p = 0; p < mPanels; p++)
                        Micro(packA + p * MR * kc, packB + q * NR * kc, kc, acc + p * MR * ldAcc + q * NR, ldAcc, accumulate);
                accumulate = true;
            }
        }
        if (!accumulate) new Span<float>(acc, mPanels * MR * ldAcc).Clear(); // K == 0: the product is zero

        // beta 0 never reads C, so an uninitialized (NaN) output is fine.
        float alpha = s.Alpha, beta = s.Beta;
        for (int i = 0; i < mLen; i++)
        {
            float* row = c + (long)ob * s.StrideC + (long)(m0 + i) * s.Ldc + n0, src = acc + i * ldAcc;
            if (beta == 0f) for (int j = 0; j < nLen; j++) row[j] = alpha * src[j];
            else for (int j = 0; j < nLen; j++) row[j] = alpha * src[j] + beta * row[j];
        }
    }

    /// <summary>Packs rows [0, mLen) × k [0, kc) of A as MR-row panels, k-major inside a panel, zero-padded.</summary>
    static void PackA(float* a, int am, int ak, int mLen, int kc, float* dst)
    {
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
    }

    /// <summary>Packs k [0, kc) × columns [0, nLen) of B as NR-column panels, k-major inside a panel, zero-padded.</summary>
    static void PackB(float* b, int bk, int bn, int nLen, int kc, float* dst)
    {
        for (int q = 0; q < nLen; q += NR, dst += NR * kc)
        {
            int cols = Math.Min(NR, nLen - q);
            if (cols < NR) new Span<float>(dst, NR * kc).Clear();
            if (bn == 1)
                for (int k = 0; k < kc; k++) new ReadOnlySpan<float>(b + (long)k * bk + q, cols).CopyTo(new Span<float>(dst + k * NR, cols));
            else
                for (int j = 0; j < cols; j++) { float* src = b + (long)(q + j) * bn; for (int k = 0; k < kc; k++) dst[k * NR + j] = src[(long)k * bk]; }
        }
    }

    static void Micro(float* pa, float* pb, int kc, float* c, int ldc, bool accumulate)
    {
        if (UseAvx2) MicroAvx2(pa, pb, kc, c, ldc, accumulate);
        else MicroPortable(pa, pb, kc, c, ldc, accumulate);
    }

    /// <summary>6×16 block in 12 ymm accumulators: per k, two B loads, six broadcasts, twelve FMAs.</summary>
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
