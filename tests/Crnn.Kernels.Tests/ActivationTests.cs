using Xunit;

namespace Crnn.Kernels.Tests;

public class ActivationTests
{
    static double Act(Activation act, double x) => act switch
    {
        Activation.Relu => x > 0 ? x : 0,
        Activation.HardSwish => x * Math.Min(Math.Max(x + 3, 0), 6) / 6,
        Activation.HardSigmoid => Math.Min(Math.Max(0.2 * x + 0.5, 0), 1),
        _ => x,
    };

    /// <summary>Every activation on both devices, and on the host code alone with sizes with and without
    /// vector tails and one split into parallel blocks.</summary>
    public static TheoryData<string, Activation, int> Cases()
    {
        var data = new TheoryData<string, Activation, int>();
        foreach (var device in TestDevices.Names)
            foreach (var act in Enum.GetValues<Activation>())
                foreach (int n in new[] { 1, 97, 3 * 33 * 7 })
                    data.Add(device, act, n);
        foreach (var act in Enum.GetValues<Activation>())
            foreach (int n in new[] { 8, 100_003 })
                data.Add(TestDevices.HostOnly, act, n);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesReference(string device, Activation act, int n)
    {
        var dev = TestDevices.Get(device);
        var x = Reference.Random(n, 11, -5f, 5f);
        using var tx = dev.Upload(x, n);
        using var ty = Reference.NaNs(dev, n);
        new Activations(dev).Forward(act, tx.View, ty.View);
        Reference.AssertClose(Array.ConvertAll(x, v => Act(act, v)), ty.ToHost(), 1e-6, $"{act} {dev.Policy}");
        // In place (y = x) gives the same values.
        new Activations(dev).Forward(act, tx.View, tx.View);
        Assert.Equal(ty.ToHost(), tx.ToHost());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardMatchesFiniteDifferences(string device, Activation act, int n)
    {
        var dev = TestDevices.Get(device);
        var x = Reference.Random(n, 12, -5f, 5f);
        // Keep clear of the kinks (-3, 3 for hardswish; ±2.5 for hardsigmoid; 0 for relu), where the
        // derivative is a convention rather than a limit.
        for (int i = 0; i < n; i++)
            foreach (float kink in new[] { -3f, 3f, -2.5f, 2.5f, 0f })
                if (Math.Abs(x[i] - kink) < 1e-3f) x[i] = kink + 0.01f;
        var r = Reference.Random(n, 13);
        using var tx = dev.Upload(x, n);
        using var tdy = dev.Upload(r, n);
        using var tdx = Reference.NaNs(dev, n);
        new Activations(dev).Backward(act, tx.View, tdy.View, tdx.View);
        var rd = Reference.ToDouble(r);
        // The reference is element-wise, so one finite difference per element is the whole gradient.
        var expected = new double[n];
        for (int i = 0; i < n; i++)
        {
            double h = 1e-5, xi = x[i];
            expected[i] = (Act(act, xi + h) - Act(act, xi - h)) / (2 * h) * rd[i];
        }
        Reference.AssertNormClose(expected, tdx.ToHost(), 1e-6, $"{act} {dev.Policy}");
        // In place (dx = dy) gives the same values.
        new Activations(dev).Backward(act, tx.View, tdy.View, tdy.View);
        Assert.Equal(tdx.ToHost(), tdy.ToHost());
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void ResidualAdd(string device)
    {
        var dev = TestDevices.Get(device);
        var a = Reference.Random(97, 1);
        var b = Reference.Random(97, 2);
        using var ta = dev.Upload(a, 97);
        using var tb = dev.Upload(b, 97);
        using var ty = Reference.NaNs(dev, 97);
        new Activations(dev).Add(ta.View, tb.View, ty.View);
        Reference.AssertClose(a.Zip(b, (p, q) => (double)p + q).ToArray(), ty.ToHost(), 1e-7, "sum");
    }

    /// <summary>Host add and activations over sizes split into parallel blocks, with tails; two runs bit-identical.</summary>
    [Fact]
    public void HostAddAndActivationsLargeAndDeterministic()
    {
        var dev = TestDevices.Host;
        const int n = 100_003;
        var a = Reference.Random(n, 1);
        var b = Reference.Random(n, 2);
        using var ta = dev.Upload(a, n);
        using var tb = dev.Upload(b, n);
        var acts = new Activations(dev);
        float[] Run()
        {
            using var ty = Reference.NaNs(dev, n);
            acts.Add(ta.View, tb.View, ty.View);
            acts.Forward(Activation.HardSwish, ty.View, ty.View);
            acts.Backward(Activation.HardSigmoid, ta.View, ty.View, ty.View);
            return ty.ToHost();
        }
        var first = Run();
        Assert.Equal(first, Run());
        var expected = new double[n];
        for (int i = 0; i < n; i++)
        {
            double v = Act(Activation.HardSwish, (double)a[i] + b[i]);
            expected[i] = v * (a[i] > -2.5 && a[i] < 2.5 ? 0.2 : 0);
        }
        Reference.AssertClose(expected, first, 1e-6, "add, hardswish, hardsigmoid'");
    }
}
