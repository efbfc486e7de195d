using Xunit;

namespace Crnn.Kernels.Tests;

public class GemmTests
{
    /// <summary>float64 reference of the batched, strided product (and of its summed-over-batch form).</summary>
    static double[] Reference(float[] a, float[] b, float[] c0, GemmShape s, int cLength)
    {
        var c = new double[cLength];
        for (int i = 0; i < cLength; i++) c[i] = c0[i];
        int outputs = s.SumBatches != 0 ? 1 : s.Batch;
        for (int ob = 0; ob < outputs; ob++)
            for (int m = 0; m < s.M; m++)
                for (int n = 0; n < s.N; n++)
                {
                    double acc = 0;
                    for (int bi = s.SumBatches != 0 ? 0 : ob; bi < (s.SumBatches != 0 ? s.Batch : ob + 1); bi++)
                        for (int k = 0; k < s.K; k++)
                            acc += (double)a[bi * s.StrideA + m * s.AM + k * s.AK] * b[bi * s.StrideB + k * s.BK + n * s.BN];
                    int ci = ob * s.StrideC + m * s.Ldc + n;
                    c[ci] = s.Alpha * acc + (s.Beta == 0 ? 0 : s.Beta * c[ci]);
                }
        return c;
    }

    static void Check(string device, GemmVariant variant, GemmShape s, int aLen, int bLen, int cLen, bool nanOutput) =>
        Kernels.Tests.Reference.AssertClose(Expected(s, aLen, bLen, cLen, nanOutput), Run(device, variant, s, aLen, bLen, cLen, nanOutput),
            1e-5, $"{variant} M={s.M} N={s.N} K={s.K} batch={s.Batch} sum={s.SumBatches} C");

    /// <summary>C after one product on fixed-seed random A, B (and C when not NaN-filled).</summary>
    static float[] Run(string device, GemmVariant variant, GemmShape s, int aLen, int bLen, int cLen, bool nanOutput)
    {
        var dev = TestDevices.Get(device);
        var (a, b, c0) = Inputs(aLen, bLen, cLen, nanOutput);
        using var ta = dev.Upload(a, aLen);
        using var tb = dev.Upload(b, bLen);
        using var tc = dev.Upload(c0, cLen);
        new Gemm(dev).Run(ta.View, tb.View, tc.View, s, variant);
        return tc.ToHost();
    }

    static double[] Expected(GemmShape s, int aLen, int bLen, int cLen, bool nanOutput)
    {
        var (a, b, c0) = Inputs(aLen, bLen, cLen, nanOutput);
        return Reference(a, b, nanOutput ? new float[cLen] : c0, s, cLen);
    }

    static (float[] A, float[] B, float[] C) Inputs(int aLen, int bLen, int cLen, bool nanOutput) =>
        (Kernels.Tests.Reference.Random(aLen, 1), Kernels.Tests.Reference.Random(bLen, 2),
         nanOutput ? Enumerable.Repeat(float.NaN, cLen).ToArray() : Kernels.Tests.Reference.Random(cLen, 3));

    public static TheoryData<string, GemmVariant, int, int, int, bool, bool> Cases()
    {
        var data = new TheoryData<string, GemmVariant, int, int, int, bool, bool>();
        foreach (var device in TestDevices.Names)
            foreach (var variant in new[] { GemmVariant.Tiled, GemmVariant.Blocked, GemmVariant.Host })
            {
                // The tiled kernel needs 256-thread groups: the GPU-like device or a real GPU.
                if (variant == GemmVariant.Tiled && TestDevices.Get(device).GroupSize < 256) continue;
                // The host product runs on CPU-accelerator memory; the default device is enough for it.
                if (variant == GemmVariant.Host && (device != TestDevices.Default || !TestDevices.Get(device).IsCpu)) continue;
                data.Add(device, variant, 1, 1, 1, false, false);
                data.Add(device, variant, 7, 33, 97, false, false);
                data.Add(device, variant, 33, 7, 65, true, false);
                data.Add(device, variant, 97, 33, 7, false, true);
                data.Add(device, variant, 65, 70, 17, true, true);
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesFloat64Reference(string device, GemmVariant variant, int m, int n, int k, bool transA, bool transB)
    {
        var s = GemmShape.RowMajor(m, n, k, transA, transB);
        Check(device, variant, s, m * k, k * n, m * n, nanOutput: true);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void AlphaBetaAccumulate(string device, GemmVariant variant, int m, int n, int k, bool transA, bool transB)
    {
        var s = GemmShape.RowMajor(m, n, k, transA, transB, alpha: 0.5f, beta: -1.25f);
        Check(device, variant, s, m * k, k * n, m * n, nanOutput: false);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BatchedAndSummedOverBatch(string device, GemmVariant variant, int m, int n, int k, bool transA, bool transB)
    {
        const int batch = 3;
        // The shapes of a 1×1 convolution over NCHW: weights shared (stride 0), activations per image.
        var s = GemmShape.RowMajor(m, n, k, transA, transB).Batched(batch, 0, k * n, m * n);
        Check(device, variant, s, m * k, batch * k * n, batch * m * n, nanOutput: true);
        var sum = GemmShape.RowMajor(m, n, k, transA, transB).Batched(batch, m * k, k * n, 0, sumBatches: true);
        Check(device, variant, sum, batch * m * k, batch * k * n, m * n, nanOutput: true);
    }

    /// <summary>
    /// The host product on every combination of odd sizes (edges of its 6×16 micro-tiles and 96/192/256 blocks),
    /// cycling through transposes, alpha/beta, shared (stride 0) batched operands and batch sums.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)] // the portable Vector128 micro-kernel, wherever AVX2 is present too
    public void HostOddShapeSweep(bool avx2)
    {
        if (!TestDevices.Get(TestDevices.Default).IsCpu) return;
        if (avx2 && !HostGemm.UseAvx2) return;
        int[] sizes = [1, 3, 7, 17, 33, 65, 97, 130];
        bool saved = HostGemm.UseAvx2;
        HostGemm.UseAvx2 = avx2;
        try
        {
            int i = 0;
            foreach (int m in sizes)
                foreach (int n in sizes)
                    foreach (int k in sizes)
                    {
                        if (!avx2 && i++ % 7 != 0) continue; // a sample is enough for the fallback
                        int c = avx2 ? i++ : i;
                        bool transA = c % 2 == 1, transB = c / 2 % 2 == 1;
                        var s = GemmShape.RowMajor(m, n, k, transA, transB, alpha: c % 5 == 0 ? 0.5f : 1f, beta: c % 3 == 0 ? -1.25f : 0f);
                        switch (c % 4)
                        {
                            case 0: Check(TestDevices.Default, GemmVariant.Host, s, m * k, k * n, m * n, nanOutput: s.Beta == 0); break;
                            case 1: Check(TestDevices.Default, GemmVariant.Host, s.Batched(2, 0, k * n, m * n), m * k, 2 * k * n, 2 * m * n, s.Beta == 0); break;
                            case 2: Check(TestDevices.Default, GemmVariant.Host, s.Batched(3, m * k, 0, m * n), 3 * m * k, k * n, 3 * m * n, s.Beta == 0); break;
                            default: Check(TestDevices.Default, GemmVariant.Host, s.Batched(3, m * k, k * n, 0, sumBatches: true), 3 * m * k, 3 * k * n, m * n, s.Beta == 0); break;
                        }
                    }
        }
        finally { HostGemm.UseAvx2 = saved; }
    }

    /// <summary>Two runs of the (multi-threaded) host product give bit-identical results.</summary>
    [Fact]
    public void HostIsDeterministic()
    {
        if (!TestDevices.Get(TestDevices.Default).IsCpu) return;
        var plain = GemmShape.RowMajor(301, 517, 611, transB: true);
        var sum = GemmShape.RowMajor(97, 130, 333, transA: true, beta: 0.5f).Batched(5, 97 * 333, 333 * 130, 0, sumBatches: true);
        foreach (var (s, aLen, bLen, cLen) in new[] { (plain, 301 * 611, 611 * 517, 301 * 517), (sum, 5 * 97 * 333, 5 * 333 * 130, 97 * 130) })
        {
            var first = Run(TestDevices.Default, GemmVariant.Host, s, aLen, bLen, cLen, nanOutput: s.Beta == 0);
            var second = Run(TestDevices.Default, GemmVariant.Host, s, aLen, bLen, cLen, nanOutput: s.Beta == 0);
            Assert.Equal(first, second);
            Kernels.Tests.Reference.AssertClose(Expected(s, aLen, bLen, cLen, s.Beta == 0), first, 1e-5, "host C");
        }
    }

    [Fact]
    public void AutoPicksHostOnTheCpuAccelerator()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        Assert.Equal(dev.IsCpu ? GemmVariant.Host : GemmVariant.Tiled, new Gemm(dev).Preferred);
    }

    [Fact]
    public void RejectsOutOfRangeShapes()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        using var a = dev.Allocate(6);
        using var c = dev.Allocate(4);
        var e = Assert.Throws<ArgumentException>(() => new Gemm(dev).Run(a.View, a.View, c.View, GemmShape.RowMajor(2, 2, 4)));
        Assert.Contains("past the end", e.Message);
    }
}
