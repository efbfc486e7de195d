using Xunit;

namespace Crnn.Kernels.Tests;

public class BiasTests
{
    public static TheoryData<string, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 1, 1, 1);
            data.Add(device, 3, 7, 97);
            data.Add(device, 33, 37, 1);
            // Several pieces of Bias.PieceLength positions, boundaries inside an image's plane and between rows.
            data.Add(device, 7, 5, 97);
            data.Add(device, 601, 9, 1);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void AddAndGradientMatchReference(string device, int outer, int channels, int inner)
    {
        var dev = TestDevices.Get(device);
        int n = outer * channels * inner;
        var y = Reference.Random(n, 1);
        var bias = Reference.Random(channels, 2);
        using var ty = dev.Upload(y, n);
        using var tb = dev.Upload(bias, channels);
        var bias64 = new Bias(dev);
        bias64.Add(ty.View, tb.View, outer, channels, inner);
        var expected = new double[n];
        for (int i = 0; i < n; i++) expected[i] = y[i] + (double)bias[i / inner % channels];
        Reference.AssertClose(expected, ty.ToHost(), 1e-6, "y + bias");

        // The gradient of Σ (y + bias)·r with respect to bias, by finite differences of the float64 form.
        var r = Reference.Random(n, 3);
        using var tr = dev.Upload(r, n);
        using var tdb = Reference.NaNs(dev, channels);
        bias64.Gradient(tr.View, tdb.View, outer, channels, inner);
        var rd = Reference.ToDouble(r);
        var numeric = Reference.NumericGradient(b =>
        {
            double s = 0;
            for (int i = 0; i < n; i++) s += (y[i] + b[i / inner % channels]) * rd[i];
            return s;
        }, Reference.ToDouble(bias));
        Reference.AssertNormClose(numeric, tdb.ToHost(), 1e-6, "dbias");
    }

    [Fact]
    public void RejectsMismatchedShapes()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        using var y = dev.Allocate(12);
        using var b = dev.Allocate(4);
        Assert.Throws<ArgumentException>(() => new Bias(dev).Add(y.View, b.View, 2, 3, 2));
    }
}
