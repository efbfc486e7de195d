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

    static void Check(string device, GemmVariant variant, GemmShape s, int aLen, int bLen, int cLen, bool nanOutput)
    {
        var dev = TestDevices.Get(device);
        var gemm = new Gemm(dev);
        var a = Kernels.Tests.Reference.Random(aLen, 1);
        var b = Kernels.Tests.Reference.Random(bLen, 2);
        var c0 = nanOutput ? Enumerable.Repeat(float.NaN, cLen).ToArray() : Kernels.Tests.Reference.Random(cLen, 3);
        using var ta = dev.Upload(a, aLen);
        using var tb = dev.Upload(b, bLen);
        using var tc = dev.Upload(c0, cLen);
        gemm.Run(ta.View, tb.View, tc.View, s, variant);
        var expected = Reference(a, b, nanOutput ? new float[cLen] : c0, s, cLen);
        Kernels.Tests.Reference.AssertClose(expected, tc.ToHost(), 1e-5, $"{variant} C");
    }

    public static TheoryData<string, GemmVariant, int, int, int, bool, bool> Cases()
    {
        var data = new TheoryData<string, GemmVariant, int, int, int, bool, bool>();
        foreach (var device in TestDevices.Names)
            foreach (var variant in new[] { GemmVariant.Tiled, GemmVariant.Blocked })
            {
                // The tiled kernel needs 256-thread groups: the GPU-like device or a real GPU.
                if (variant == GemmVariant.Tiled && TestDevices.Get(device).GroupSize < 256) continue;
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
