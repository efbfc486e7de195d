using Xunit;

namespace Crnn.Kernels.Tests;

public class LinearTests
{
    /// <summary>float64 y[n, o] = Σ_i x[n, i]·W[o, i] + b[o].</summary>
    static double[] ReferenceForward(double[] x, double[] w, double[] b, int rows, int inF, int outF)
    {
        var y = new double[rows * outF];
        for (int n = 0; n < rows; n++)
            for (int o = 0; o < outF; o++)
            {
                double v = b[o];
                for (int i = 0; i < inF; i++) v += x[n * inF + i] * w[o * inF + i];
                y[n * outF + o] = v;
            }
        return y;
    }

    public static TheoryData<string, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 1, 1, 1);
            data.Add(device, 7, 33, 5);
            data.Add(device, 25, 19, 37);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesReference(string device, int rows, int inF, int outF)
    {
        var dev = TestDevices.Get(device);
        var x = Reference.Random(rows * inF, 1);
        var w = Reference.Random(outF * inF, 2);
        var b = Reference.Random(outF, 3);
        using var tx = dev.Upload(x, rows * inF);
        using var tw = dev.Upload(w, outF * inF);
        using var tb = dev.Upload(b, outF);
        using var ty = Reference.NaNs(dev, rows * outF);
        new Linear(dev).Forward(tx.View, tw.View, tb.View, ty.View, rows, inF, outF);
        var expected = ReferenceForward(Reference.ToDouble(x), Reference.ToDouble(w), Reference.ToDouble(b), rows, inF, outF);
        Reference.AssertClose(expected, ty.ToHost(), 1e-5, "y");
    }

    /// <summary>The host inference path with Wᵀ packed in advance: the product's chains are the same, so the same bits as
    /// packing per call (the head at batch 1, 25 rows of 192 to 37 classes, and a shape over one packing slice).</summary>
    [Theory]
    [InlineData(25, 192, 37)]
    [InlineData(13, 300, 70)]
    public void PackedWeightGivesTheSameBits(int rows, int inF, int outF)
    {
        var dev = TestDevices.Host;
        var x = Reference.Random(rows * inF, 4);
        var w = Reference.Random(outF * inF, 5);
        var b = Reference.Random(outF, 6);
        using var tx = dev.Upload(x, rows * inF);
        using var tw = dev.Upload(w, outF * inF);
        using var tb = dev.Upload(b, outF);
        using var perCall = Reference.NaNs(dev, rows * outF);
        using var packed = Reference.NaNs(dev, rows * outF);
        var linear = new Linear(dev);
        linear.Forward(tx.View, tw.View, tb.View, perCall.View, rows, inF, outF);
        linear.Forward(tx.View, tw.View, tb.View, packed.View, rows, inF, outF, PackedOperand.RowsAsTransposedB(w, 0, outF, inF));
        Reference.AssertClose(ReferenceForward(Reference.ToDouble(x), Reference.ToDouble(w), Reference.ToDouble(b), rows, inF, outF), packed.ToHost(), 1e-5, "y");
        Assert.Equal(perCall.ToHost(), packed.ToHost());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardMatchesFiniteDifferences(string device, int rows, int inF, int outF)
    {
        var dev = TestDevices.Get(device);
        var x = Reference.Random(rows * inF, 4);
        var w = Reference.Random(outF * inF, 5);
        var b = Reference.Random(outF, 6);
        var r = Reference.Random(rows * outF, 7);
        using var tx = dev.Upload(x, rows * inF);
        using var tw = dev.Upload(w, outF * inF);
        using var tdy = dev.Upload(r, rows * outF);
        using var tdx = Reference.NaNs(dev, rows * inF);
        using var tdw = Reference.NaNs(dev, outF * inF);
        using var tdb = Reference.NaNs(dev, outF);
        new Linear(dev).Backward(tx.View, tw.View, tdy.View, tdx.View, tdw.View, tdb.View, rows, inF, outF);

        double[] xd = Reference.ToDouble(x), wd = Reference.ToDouble(w), bd = Reference.ToDouble(b), rd = Reference.ToDouble(r);
        double Loss(double[] xs, double[] ws, double[] bs) => Reference.Dot(ReferenceForward(xs, ws, bs, rows, inF, outF), rd);
        Reference.AssertNormClose(Reference.NumericGradient(xs => Loss(xs, wd, bd), xd), tdx.ToHost(), 1e-5, "dx");
        Reference.AssertNormClose(Reference.NumericGradient(ws => Loss(xd, ws, bd), wd), tdw.ToHost(), 1e-5, "dW");
        Reference.AssertNormClose(Reference.NumericGradient(bs => Loss(xd, wd, bs), bd), tdb.ToHost(), 1e-5, "db");
    }

    [Fact]
    public void RejectsMismatchedBuffers()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        using var x = dev.Allocate(6);
        using var w = dev.Allocate(6);
        using var b = dev.Allocate(2);
        using var y = dev.Allocate(4);
        var linear = new Linear(dev);
        var e = Assert.Throws<ArgumentException>(() => linear.Forward(x.View, w.View, b.View, y.View, 2, 3, 3));
        Assert.Contains("weight has", e.Message);
        e = Assert.Throws<ArgumentException>(() => linear.Backward(x.View, w.View, y.View, x.View, w.View, y.View, 2, 3, 2));
        Assert.Contains("dBias", e.Message);
    }
}
