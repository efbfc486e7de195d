using Xunit;

namespace Crnn.Kernels.Tests;

public class GradientNormTests
{
    static double ReferenceNorm(float[] g)
    {
        double s = 0;
        foreach (float x in g) s += (double)x * x;
        return Math.Sqrt(s);
    }

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var device in TestDevices.Names)
            foreach (int n in new[] { 1, 97, 4099 })
                data.Add(device, n);
        // The seed model's size, on the default device only (the GPU-like one is slow per element).
        data.Add(TestDevices.Default, 1_450_003);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void NormMatchesReference(string device, int n)
    {
        var dev = TestDevices.Get(device);
        var g = Reference.Random(n, 1);
        using var tg = dev.Upload(g, n);
        using var norm = new GradientNorm(dev);
        norm.Compute(tg.View);
        var result = norm.Read();
        Reference.AssertClose([ReferenceNorm(g)], [result.Norm], 1e-6, "norm");
        Assert.Equal(1f, result.Scale);
        Assert.True(result.IsFinite);
        Assert.Equal(g, tg.ToHost());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ClipScalesToTheMaximum(string device, int n)
    {
        var dev = TestDevices.Get(device);
        var g = Reference.Random(n, 2, -3f, 3f);
        double expectedNorm = ReferenceNorm(g), maxNorm = expectedNorm / 3;
        using var tg = dev.Upload(g, n);
        using var norm = new GradientNorm(dev);
        norm.Clip(tg.View, (float)maxNorm);
        var result = norm.Read();
        double scale = maxNorm / (expectedNorm + 1e-6);
        Reference.AssertClose([expectedNorm], [result.Norm], 1e-6, "norm");
        Reference.AssertClose([scale], [result.Scale], 1e-6, "scale");
        Reference.AssertClose(Array.ConvertAll(g, x => x * scale), tg.ToHost(), 1e-6, "clipped");
        Reference.AssertClose([maxNorm], [(float)ReferenceNorm(tg.ToHost())], 1e-5, "norm after clipping");
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void UnderTheMaximumIsANoOp(string device)
    {
        var dev = TestDevices.Get(device);
        var g = Reference.Random(97, 3);
        using var tg = dev.Upload(g, 97);
        using var norm = new GradientNorm(dev);
        norm.Clip(tg.View, (float)ReferenceNorm(g) * 1.01f);
        Assert.Equal(1f, norm.Read().Scale);
        Assert.Equal(g, tg.ToHost());
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void NonFiniteGradientsAreDetected(string device)
    {
        var dev = TestDevices.Get(device);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            var g = Reference.Random(1031, 4);
            g[517] = bad;
            using var tg = dev.Upload(g, g.Length);
            using var norm = new GradientNorm(dev);
            norm.Compute(tg.View, 1f);
            var result = norm.Read();
            Assert.False(result.IsFinite, $"norm {result.Norm} with a {bad} gradient");
            Assert.True(float.IsNaN(result.Scale), $"scale {result.Scale} with a {bad} gradient");
        }
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void NonFiniteGradientsMakeAdamSkipTheStep(string device)
    {
        var dev = TestDevices.Get(device);
        var p0 = Reference.Random(97, 5);
        var g = Reference.Random(97, 6);
        g[40] = float.NaN;
        using var tp = dev.Upload(p0, 97);
        using var tg = dev.Upload(g, 97);
        using var tm = dev.Allocate(97);
        using var tv = dev.Allocate(97);
        tm.Clear(); tv.Clear();
        using var norm = new GradientNorm(dev);
        using var adam = new Adam(dev);
        norm.Compute(tg.View, 1f);
        adam.Step(tp.View, tg.View, tm.View, tv.View, AdamOptions.Adam(0.1f), 1, norm.Scale);
        Assert.Equal(p0, tp.ToHost());
        Assert.All(tm.ToHost(), x => Assert.Equal(0f, x));
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TwoRunsAreBitIdentical(string device)
    {
        var dev = TestDevices.Get(device);
        int n = dev.IsCpu && dev.GroupSize > 2 ? 20_011 : 300_007;
        var g = Reference.Random(n, 7, -10f, 10f);
        float Run()
        {
            using var tg = dev.Upload(g, n);
            using var norm = new GradientNorm(dev);
            norm.Compute(tg.View);
            return norm.Read().Norm;
        }
        Assert.Equal(BitConverter.SingleToInt32Bits(Run()), BitConverter.SingleToInt32Bits(Run()));
    }

    public static TheoryData<string, int> LossCases()
    {
        var data = new TheoryData<string, int>();
        foreach (var device in TestDevices.Names)
            foreach (int batch in new[] { 1, 7, 256, 1031 })
                data.Add(device, batch);
        return data;
    }

    [Theory]
    [MemberData(nameof(LossCases))]
    public void LossSumIsReadWithTheNorm(string device, int batch)
    {
        var dev = TestDevices.Get(device);
        var g = Reference.Random(4099, 8);
        var losses = Reference.Random(batch, 9, 0f, 60f);
        using var tg = dev.Upload(g, g.Length);
        using var tl = dev.Upload(losses, batch);
        using var norm = new GradientNorm(dev);
        norm.Compute(tg.View, 1f, tl.View);
        var result = norm.Read();
        Reference.AssertClose([losses.Sum(l => (double)l)], [result.LossSum], 1e-6, "loss sum");
        Reference.AssertClose([ReferenceNorm(g)], [result.Norm], 1e-6, "norm");
        Assert.True(result.IsFinite);
        Assert.Equal(losses, tl.ToHost());
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void WithoutLossesTheSumIsZero(string device)
    {
        var dev = TestDevices.Get(device);
        using var tg = dev.Upload(Reference.Random(97, 10), 97);
        using var norm = new GradientNorm(dev);
        norm.Compute(tg.View);
        Assert.Equal(0f, norm.Read().LossSum);
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void NonFiniteLossIsDetected(string device)
    {
        var dev = TestDevices.Get(device);
        using var tg = dev.Upload(Reference.Random(97, 11), 97);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity })
        {
            var losses = Reference.Random(33, 12, 0f, 10f);
            losses[20] = bad;
            using var tl = dev.Upload(losses, losses.Length);
            using var norm = new GradientNorm(dev);
            norm.Compute(tg.View, 1f, tl.View);
            var result = norm.Read();
            Assert.True(float.IsFinite(result.Norm), $"norm {result.Norm}");
            Assert.False(result.IsFinite, $"loss sum {result.LossSum} with a {bad} loss");
            Assert.True(float.IsNaN(result.Scale), $"scale {result.Scale} with a {bad} loss: Adam must skip the step");
        }
    }

    [Fact]
    public void RejectsBadMaximum()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        using var g = dev.Allocate(4);
        using var norm = new GradientNorm(dev);
        Assert.Throws<ArgumentException>(() => norm.Compute(g.View, 0f));
        Assert.Throws<ArgumentException>(() => norm.Compute(g.View, float.NaN));
    }
}
