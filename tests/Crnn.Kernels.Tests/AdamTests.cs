using Xunit;

namespace Crnn.Kernels.Tests;

public class AdamTests
{
    const int Steps = 6;

    /// <summary>PyTorch's Adam/AdamW in float64, one step: returns nothing, updates p, m, v in place.</summary>
    static void ReferenceStep(double[] p, double[] g, double[] m, double[] v, AdamOptions o, int t, double scale = 1)
    {
        double b1 = o.Beta1, b2 = o.Beta2, lr = o.LearningRate, wd = o.WeightDecay;
        for (int i = 0; i < p.Length; i++)
        {
            double grad = g[i] * scale;
            if (o.Decoupled) p[i] *= 1 - lr * wd;
            else grad += wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * grad;
            v[i] = b2 * v[i] + (1 - b2) * grad * grad;
            double mHat = m[i] / (1 - Math.Pow(b1, t)), vHat = v[i] / (1 - Math.Pow(b2, t));
            p[i] -= lr * mHat / (Math.Sqrt(vHat) + o.Epsilon);
        }
    }

    public static TheoryData<string, int, string> Cases()
    {
        var data = new TheoryData<string, int, string>();
        foreach (var device in TestDevices.Names)
            foreach (int n in new[] { 1, 97, 1031 })
                foreach (var mode in new[] { "adam", "adam-l2", "adamw" })
                    data.Add(device, n, mode);
        return data;
    }

    static AdamOptions Options(string mode) => mode switch
    {
        "adam" => AdamOptions.Adam(0.01f),
        "adam-l2" => AdamOptions.Adam(0.01f, weightDecay: 0.05f),
        _ => AdamOptions.AdamW(0.01f, weightDecay: 0.05f),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void StepsMatchReference(string device, int n, string mode)
    {
        var dev = TestDevices.Get(device);
        var options = Options(mode);
        var p0 = Reference.Random(n, 1);
        using var tp = dev.Upload(p0, n);
        using var tg = dev.Allocate(n);
        using var tm = dev.Allocate(n);
        using var tv = dev.Allocate(n);
        tm.Clear(); tv.Clear();
        var p = Reference.ToDouble(p0);
        var m = new double[n];
        var v = new double[n];
        using var adam = new Adam(dev);
        for (int t = 1; t <= Steps; t++)
        {
            // Gradients of varying scale per step, so the moments and bias corrections all matter.
            var g = Reference.Random(n, 100 + t, -t, t);
            tg.CopyFrom(g);
            adam.Step(tp.View, tg.View, tm.View, tv.View, options, t);
            ReferenceStep(p, Reference.ToDouble(g), m, v, options, t);
        }
        Reference.AssertClose(p, tp.ToHost(), 1e-5, "p");
        Reference.AssertClose(m, tm.ToHost(), 1e-5, "m");
        Reference.AssertClose(v, tv.ToHost(), 1e-5, "v");
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void GradientScaleMultipliesGradients(string device)
    {
        var dev = TestDevices.Get(device);
        const int n = 97;
        var options = AdamOptions.Adam(0.01f, weightDecay: 0.05f);
        var p0 = Reference.Random(n, 2);
        var g = Reference.Random(n, 3);
        using var tp = dev.Upload(p0, n);
        using var tg = dev.Upload(g, n);
        using var tm = dev.Upload(Reference.Random(n, 4, -0.1f, 0.1f), n);
        using var tv = dev.Upload(Reference.Random(n, 5, 0f, 0.01f), n);
        using var scale = dev.Upload(new[] { 0.25f }, 1);
        var p = Reference.ToDouble(p0);
        var m = Reference.ToDouble(tm.ToHost());
        var v = Reference.ToDouble(tv.ToHost());
        using var adam = new Adam(dev);
        adam.Step(tp.View, tg.View, tm.View, tv.View, options, 3, scale.View);
        ReferenceStep(p, Reference.ToDouble(g), m, v, options, 3, 0.25);
        Reference.AssertClose(p, tp.ToHost(), 1e-5, "p");
        Reference.AssertClose(m, tm.ToHost(), 1e-5, "m");
        Reference.AssertClose(v, tv.ToHost(), 1e-5, "v");
        Assert.Equal(g, tg.ToHost());
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void NonFiniteScaleSkipsTheStep(string device)
    {
        var dev = TestDevices.Get(device);
        const int n = 33;
        var p0 = Reference.Random(n, 6);
        var m0 = Reference.Random(n, 7);
        var v0 = Reference.Random(n, 8, 0f, 1f);
        using var tp = dev.Upload(p0, n);
        using var tg = dev.Upload(Reference.Random(n, 9), n);
        using var tm = dev.Upload(m0, n);
        using var tv = dev.Upload(v0, n);
        using var adam = new Adam(dev);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity })
        {
            using var scale = dev.Upload(new[] { bad }, 1);
            adam.Step(tp.View, tg.View, tm.View, tv.View, AdamOptions.AdamW(0.01f), 1, scale.View);
            Assert.Equal(p0, tp.ToHost());
            Assert.Equal(m0, tm.ToHost());
            Assert.Equal(v0, tv.ToHost());
        }
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TwoRunsAreBitIdentical(string device)
    {
        var dev = TestDevices.Get(device);
        Assert.Equal(Run(dev), Run(dev));
    }

    static float[] Run(Device dev)
    {
        const int n = 1031;
        using var tp = dev.Upload(Reference.Random(n, 10), n);
        using var tg = dev.Allocate(n);
        using var tm = dev.Allocate(n);
        using var tv = dev.Allocate(n);
        tm.Clear(); tv.Clear();
        using var adam = new Adam(dev);
        for (int t = 1; t <= 5; t++)
        {
            tg.CopyFrom(Reference.Random(n, 20 + t));
            adam.Step(tp.View, tg.View, tm.View, tv.View, AdamOptions.AdamW(1e-3f), t);
        }
        return [.. tp.ToHost(), .. tm.ToHost(), .. tv.ToHost()];
    }

    [Fact]
    public void RejectsBadArguments()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        using var a = dev.Allocate(8);
        using var b = dev.Allocate(7);
        using var two = dev.Allocate(2);
        using var adam = new Adam(dev);
        var ok = AdamOptions.Adam(1e-3f);
        Assert.Throws<ArgumentException>(() => adam.Step(a.View, b.View, a.View, a.View, ok, 1));
        Assert.Throws<ArgumentException>(() => adam.Step(a.View, a.View, a.View, a.View, ok, 0));
        Assert.Throws<ArgumentException>(() => adam.Step(a.View, a.View, a.View, a.View, ok with { Beta2 = 1f }, 1));
        Assert.Throws<ArgumentException>(() => adam.Step(a.View, a.View, a.View, a.View, ok with { Epsilon = 0f }, 1));
        Assert.Throws<ArgumentException>(() => adam.Step(a.View, a.View, a.View, a.View, ok with { LearningRate = float.NaN }, 1));
        Assert.Throws<ArgumentException>(() => adam.Step(a.View, a.View, a.View, a.View, ok with { WeightDecay = -1f }, 1));
        Assert.Throws<ArgumentException>(() => adam.Step(a.View, a.View, a.View, a.View, ok, 1, two.View));
    }
}
