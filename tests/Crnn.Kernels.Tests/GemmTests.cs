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

    static void Check(Device dev, GemmShape s, int aLen, int bLen, int cLen, bool nanOutput) =>
        Kernels.Tests.Reference.AssertClose(Expected(s, aLen, bLen, cLen, nanOutput), Run(dev, s, aLen, bLen, cLen, nanOutput),
            1e-5, $"{dev.Policy} M={s.M} N={s.N} K={s.K} batch={s.Batch} sum={s.SumBatches} C");

    /// <summary>C after one product on fixed-seed random A, B (and C when not NaN-filled).</summary>
    static float[] Run(Device dev, GemmShape s, int aLen, int bLen, int cLen, bool nanOutput)
    {
        var (a, b, c0) = Inputs(aLen, bLen, cLen, nanOutput);
        using var ta = dev.Upload(a, aLen);
        using var tb = dev.Upload(b, bLen);
        using var tc = dev.Upload(c0, cLen);
        new Gemm(dev).Run(ta.View, tb.View, tc.View, s);
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

    /// <summary>Odd sizes on both devices; 65×70 spans two 64-wide tiles each way, so with 4 groups the
    /// grid-stride loop over tiles runs on several groups.</summary>
    public static TheoryData<string, int, int, int, bool, bool> Cases()
    {
        var data = new TheoryData<string, int, int, int, bool, bool>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 1, 1, 1, false, false);
            data.Add(device, 7, 33, 97, false, false);
            data.Add(device, 33, 7, 65, true, false);
            data.Add(device, 97, 33, 7, false, true);
            data.Add(device, 65, 70, 17, true, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesFloat64Reference(string device, int m, int n, int k, bool transA, bool transB)
    {
        var s = GemmShape.RowMajor(m, n, k, transA, transB);
        Check(TestDevices.Get(device), s, m * k, k * n, m * n, nanOutput: true);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void AlphaBetaAccumulate(string device, int m, int n, int k, bool transA, bool transB)
    {
        var s = GemmShape.RowMajor(m, n, k, transA, transB, alpha: 0.5f, beta: -1.25f);
        Check(TestDevices.Get(device), s, m * k, k * n, m * n, nanOutput: false);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BatchedAndSummedOverBatch(string device, int m, int n, int k, bool transA, bool transB)
    {
        const int batch = 3;
        // The shapes of a 1×1 convolution over NCHW: weights shared (stride 0), activations per image.
        var s = GemmShape.RowMajor(m, n, k, transA, transB).Batched(batch, 0, k * n, m * n);
        Check(TestDevices.Get(device), s, m * k, batch * k * n, batch * m * n, nanOutput: true);
        var sum = GemmShape.RowMajor(m, n, k, transA, transB).Batched(batch, m * k, k * n, 0, sumBatches: true);
        Check(TestDevices.Get(device), sum, batch * m * k, batch * k * n, m * n, nanOutput: true);
    }

    /// <summary>Every micro-kernel the CPU has: AVX-512, AVX2 where present, always the portable Vector128 one.</summary>
    public static TheoryData<string> HostKernels() => [.. HostGemm.Supported.Select(k => k.ToString())];

    /// <summary>
    /// The host product on every combination of odd sizes (edges of its 6×16 micro-tiles and 96/192/256 blocks),
    /// cycling through transposes, alpha/beta, shared (stride 0) batched operands and batch sums.
    /// </summary>
    [Theory]
    [MemberData(nameof(HostKernels))]
    public void HostOddShapeSweep(string kernelName)
    {
        var kernel = Enum.Parse<HostKernel>(kernelName);
        int[] sizes = [1, 3, 7, 17, 33, 65, 97, 130];
        bool portable = kernel == HostKernel.Portable;
        var saved = HostGemm.Kernel;
        HostGemm.Kernel = kernel;
        try
        {
            int i = 0;
            foreach (int m in sizes)
                foreach (int n in sizes)
                    foreach (int k in sizes)
                    {
                        if (portable && i++ % 7 != 0) continue; // a sample is enough for the fallback
                        int c = portable ? i : i++;
                        bool transA = c % 2 == 1, transB = c / 2 % 2 == 1;
                        var s = GemmShape.RowMajor(m, n, k, transA, transB, alpha: c % 5 == 0 ? 0.5f : 1f, beta: c % 3 == 0 ? -1.25f : 0f);
                        switch (c % 4)
                        {
                            case 0: Check(TestDevices.Host, s, m * k, k * n, m * n, nanOutput: s.Beta == 0); break;
                            case 1: Check(TestDevices.Host, s.Batched(2, 0, k * n, m * n), m * k, 2 * k * n, 2 * m * n, s.Beta == 0); break;
                            case 2: Check(TestDevices.Host, s.Batched(3, m * k, 0, m * n), 3 * m * k, k * n, 3 * m * n, s.Beta == 0); break;
                            default: Check(TestDevices.Host, s.Batched(3, m * k, k * n, 0, sumBatches: true), 3 * m * k, 3 * k * n, m * n, s.Beta == 0); break;
                        }
                    }
        }
        finally { HostGemm.Kernel = saved; }
    }

    /// <summary>Two runs of the (multi-threaded) host product give bit-identical results.</summary>
    [Fact]
    public void HostIsDeterministic()
    {
        var plain = GemmShape.RowMajor(301, 517, 611, transB: true);
        var sum = GemmShape.RowMajor(97, 130, 333, transA: true, beta: 0.5f).Batched(5, 97 * 333, 333 * 130, 0, sumBatches: true);
        foreach (var (s, aLen, bLen, cLen) in new[] { (plain, 301 * 611, 611 * 517, 301 * 517), (sum, 5 * 97 * 333, 5 * 333 * 130, 97 * 130) })
        {
            var first = Run(TestDevices.Host, s, aLen, bLen, cLen, nanOutput: s.Beta == 0);
            var second = Run(TestDevices.Host, s, aLen, bLen, cLen, nanOutput: s.Beta == 0);
            Assert.Equal(first, second);
            Kernels.Tests.Reference.AssertClose(Expected(s, aLen, bLen, cLen, s.Beta == 0), first, 1e-5, "host C");
        }
    }

    /// <summary>The AVX-512 and AVX2 micro-kernels (where the CPU has both) give the same bits: each element is one
    /// chain of fused multiply-adds in the same order, whichever width computes it and whether it goes to C straight
    /// from the registers (AVX-512) or through the accumulator. Odd N leaves a lone 16-wide panel beside the AVX-512
    /// pairs; a batch sharing A runs as one product whose 32-column tiles straddle the images (50 columns each).</summary>
    [Fact]
    public void FmaKernelsGiveTheSameBits()
    {
        var fma = HostGemm.Supported.Where(k => k != HostKernel.Portable).ToArray();
        var saved = HostGemm.Kernel;
        try
        {
            var shapes = new[] { (301, 517, 611), (97, 100, 80), (13, 17, 300) }
                .Select(d => (Shape: GemmShape.RowMajor(d.Item1, d.Item2, d.Item3, transB: d.Item2 % 2 == 1), A: d.Item1 * d.Item3, B: d.Item3 * d.Item2, C: d.Item1 * d.Item2))
                .Append((GemmShape.RowMajor(13, 50, 40, alpha: 0.5f).Batched(3, 0, 40 * 50, 13 * 50), 13 * 40, 3 * 40 * 50, 3 * 13 * 50));
            foreach (var (s, aLen, bLen, cLen) in shapes)
            {
                var results = fma.Select(kernel =>
                {
                    HostGemm.Kernel = kernel;
                    return Run(TestDevices.Host, s, aLen, bLen, cLen, nanOutput: true);
                }).ToArray();
                foreach (var r in results) Assert.Equal(results[0], r);
                if (results.Length > 0) Kernels.Tests.Reference.AssertClose(Expected(s, aLen, bLen, cLen, true), results[0], 1e-5, "host C");
            }
        }
        finally { HostGemm.Kernel = saved; }
    }

    /// <summary>
    /// The seed model's sizes under each policy: the linear head's and the LSTM's long products (K ≥ 800), and
    /// a weight gradient summed over a batch the way unit 0's 1×1 convolution takes it (dy [8, 800]·x [8, 800]ᵀ
    /// per image, 800 = 16×50 positions). The GPU-like device gets batch 4 for the sum (≈ 400 barriers, each an
    /// OS wait there).
    /// </summary>
    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void SeedModelShapes(string device)
    {
        var dev = TestDevices.Get(device);
        Check(dev, GemmShape.RowMajor(97, 130, 833, transB: true), 97 * 833, 833 * 130, 97 * 130, nanOutput: true);
        Check(dev, GemmShape.RowMajor(37, 192, 800, transA: true), 800 * 37, 800 * 192, 37 * 192, nanOutput: true);
        int batch = device == TestDevices.GpuLike ? 4 : 8;
        var weightGradient = GemmShape.RowMajor(8, 8, 800, transB: true).Batched(batch, 8 * 800, 8 * 800, 0, sumBatches: true);
        Check(dev, weightGradient, batch * 8 * 800, batch * 8 * 800, 8 * 8, nanOutput: true);
    }

    /// <summary>Products the gpu policy splits along K (few output tiles, long K): odd sizes, a batch sum whose K
    /// is not a multiple of the piece length, alpha/beta accumulation.</summary>
    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void SplitAlongKMatchesFloat64Reference(string device)
    {
        var dev = TestDevices.Get(device);
        var sum = GemmShape.RowMajor(33, 70, 301, transA: true).Batched(3, 33 * 301, 301 * 70, 0, sumBatches: true);
        Check(dev, sum, 3 * 33 * 301, 3 * 301 * 70, 33 * 70, nanOutput: true);
        var accumulate = GemmShape.RowMajor(37, 19, 1000, transB: true, alpha: 0.5f, beta: -1.25f);
        Check(dev, accumulate, 37 * 1000, 1000 * 19, 37 * 19, nanOutput: false);
    }

    /// <summary>The split-K sum has a fixed order (pieces of <see cref="Gemm.PieceLength"/>, summed in order), so
    /// one group and four groups give the same bits, as any GPU's grid would.</summary>
    [Fact]
    public void SplitAlongKIsTheSameForAnyGridSize()
    {
        using var oneGroup = Device.OpenCpu(Device.GpuLikeWarp, Device.GpuLikeWarps, 1, KernelPolicy.Gpu);
        var s = GemmShape.RowMajor(8, 8, 800, transB: true).Batched(2, 8 * 800, 8 * 800, 0, sumBatches: true);
        var four = Run(TestDevices.Get(TestDevices.GpuLike), s, 2 * 8 * 800, 2 * 8 * 800, 64, nanOutput: true);
        Assert.Equal(four, Run(oneGroup, s, 2 * 8 * 800, 2 * 8 * 800, 64, nanOutput: true));
        Assert.Equal(four, Run(TestDevices.Get(TestDevices.GpuLike), s, 2 * 8 * 800, 2 * 8 * 800, 64, nanOutput: true));
    }

    /// <summary>Two products in one launch (a layer's weight and data gradients): each matches its float64 reference
    /// and its bits alone; both split along K (two partial ranges and two sets of arrival counters in one launch), one
    /// split, and the gradients' shapes of a 1×1 convolution that share dy. Run twice on one device: the second launch
    /// finds the arrival counters back at zero.</summary>
    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TwoProductsInOneLaunch(string device)
    {
        var dev = TestDevices.Get(device);
        var bothSplit = (GemmShape.RowMajor(33, 70, 301, transA: true).Batched(3, 33 * 301, 301 * 70, 0, sumBatches: true),
            GemmShape.RowMajor(37, 19, 1000, transB: true, alpha: 0.5f, beta: -1.25f));
        var oneSplit = (GemmShape.RowMajor(8, 8, 800, transB: true).Batched(2, 8 * 800, 8 * 800, 0, sumBatches: true),
            GemmShape.RowMajor(65, 70, 17, transA: true, beta: 1f).Batched(2, 65 * 17, 17 * 70, 65 * 70));
        foreach (var (first, second) in new[] { bothSplit, oneSplit, bothSplit })
        {
            var (f, g) = RunPair(dev, first, second);
            Kernels.Tests.Reference.AssertClose(Expected(first, ALength(first), BLength(first), CLength(first), nanOutput: true), f, 1e-5, "first");
            Kernels.Tests.Reference.AssertClose(Expected(second, ALength(second), BLength(second), CLength(second), nanOutput: false), g, 1e-5, "second");
            Assert.Equal(Run(dev, first, ALength(first), BLength(first), CLength(first), nanOutput: true), f);
        }
    }

    static int ALength(GemmShape s) => (s.Batch - 1) * s.StrideA + (s.M - 1) * s.AM + (s.K - 1) * s.AK + 1;
    static int BLength(GemmShape s) => (s.Batch - 1) * s.StrideB + (s.K - 1) * s.BK + (s.N - 1) * s.BN + 1;
    static int CLength(GemmShape s) => (s.SumBatches != 0 ? 0 : (s.Batch - 1) * s.StrideC) + (s.M - 1) * s.Ldc + s.N;

    /// <summary>Both products' C after one <see cref="Gemm.Run(GemmProduct, GemmProduct)"/>: the first NaN-filled, the second accumulating.</summary>
    static (float[], float[]) RunPair(Device dev, GemmShape first, GemmShape second)
    {
        var (a, b, c) = Inputs(ALength(first), BLength(first), CLength(first), nanOutput: true);
        var (a2, b2, c2) = Inputs(ALength(second), BLength(second), CLength(second), nanOutput: false);
        using var ta = dev.Upload(a, a.Length);
        using var tb = dev.Upload(b, b.Length);
        using var tc = dev.Upload(c, c.Length);
        using var ta2 = dev.Upload(a2, a2.Length);
        using var tb2 = dev.Upload(b2, b2.Length);
        using var tc2 = dev.Upload(c2, c2.Length);
        new Gemm(dev).Run(new GemmProduct(ta.View, tb.View, tc.View, first), new GemmProduct(ta2.View, tb2.View, tc2.View, second));
        return (tc.ToHost(), tc2.ToHost());
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
