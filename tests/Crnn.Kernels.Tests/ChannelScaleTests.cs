using Xunit;

namespace Crnn.Kernels.Tests;

public class ChannelScaleTests
{
    /// <summary>[batch, channels, H·W] with H 1 or odd, W 1 or 97.</summary>
    public static TheoryData<string, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 1, 7, 97);
            data.Add(device, 3, 33, 3 * 7);
            data.Add(device, 3, 1, 1);
            data.Add(device, 1, 7, 5 * 97);
        }
        return data;
    }

    static double[] Scale(double[] x, double[] s, int spatial)
    {
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * s[i / spatial];
        return y;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesReferenceAndBackwardFiniteDifferences(string device, int batch, int channels, int spatial)
    {
        var dev = TestDevices.Get(device);
        var scale = new ChannelScale(dev);
        int rows = batch * channels, n = rows * spatial;
        var x = Reference.Random(n, 41, 1f, 5f);
        var s = Reference.Random(rows, 42, 0f, 1f); // hardsigmoid outputs
        using var tx = dev.Upload(x, n);
        using var ts = dev.Upload(s, rows);
        using var ty = Reference.NaNs(dev, n);
        scale.Forward(tx.View, ts.View, ty.View, batch, channels, spatial);
        var xd = Reference.ToDouble(x);
        var sd = Reference.ToDouble(s);
        Reference.AssertClose(Scale(xd, sd, spatial), ty.ToHost(), 1e-6, "y");

        var r = Reference.Random(n, 43);
        using var tdy = dev.Upload(r, n);
        using var tdx = Reference.NaNs(dev, n);
        using var tds = Reference.NaNs(dev, rows);
        scale.Backward(tx.View, ts.View, tdy.View, tdx.View, tds.View, batch, channels, spatial);
        var rd = Reference.ToDouble(r);
        Reference.AssertNormClose(Reference.NumericGradient(xs => Reference.Dot(Scale(xs, sd, spatial), rd), xd), tdx.ToHost(), 1e-6, "dx");
        Reference.AssertNormClose(Reference.NumericGradient(ss => Reference.Dot(Scale(xd, ss, spatial), rd), sd), tds.ToHost(), 1e-6, "ds");
    }

    [Fact]
    public void BackwardInPlaceMatchesOutOfPlace()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var scale = new ChannelScale(dev);
        const int batch = 3, channels = 7, spatial = 33, n = batch * channels * spatial;
        using var tx = dev.Upload(Reference.Random(n, 1), n);
        using var ts = dev.Upload(Reference.Random(batch * channels, 2), batch * channels);
        var r = Reference.Random(n, 3);
        using var tdy = dev.Upload(r, n);
        using var tdx = Reference.NaNs(dev, n);
        using var tds = Reference.NaNs(dev, batch * channels);
        scale.Backward(tx.View, ts.View, tdy.View, tdx.View, tds.View, batch, channels, spatial);
        using var tInPlace = dev.Upload(r, n);
        using var tds2 = Reference.NaNs(dev, batch * channels);
        scale.Backward(tx.View, ts.View, tInPlace.View, tInPlace.View, tds2.View, batch, channels, spatial);
        Assert.Equal(tdx.ToHost(), tInPlace.ToHost());
        Assert.Equal(tds.ToHost(), tds2.ToHost());
    }

    [Fact]
    public void RejectsMismatchedShapes()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var scale = new ChannelScale(dev);
        using var x = dev.Allocate(2 * 3 * 5);
        using var s = dev.Allocate(6);
        using var wrong = dev.Allocate(5);
        var e = Assert.Throws<ArgumentException>(() => scale.Forward(x.View, wrong.View, x.View, 2, 3, 5));
        Assert.Contains("s has 5", e.Message);
        e = Assert.Throws<ArgumentException>(() => scale.Backward(x.View, s.View, x.View, x.View, wrong.View, 2, 3, 5));
        Assert.Contains("ds has 5", e.Message);
    }
}
