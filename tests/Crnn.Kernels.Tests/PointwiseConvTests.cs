using Xunit;

namespace Crnn.Kernels.Tests;

public class PointwiseConvTests
{
    /// <summary>(batch, in, out, height, width): ones, odd sizes, width 97, an SE layer on pooled [B, C, 1, 1]
    /// (the single-product path) and a small cut of conv2 (80 channels over 2×5).</summary>
    static readonly int[][] Shapes =
    [
        [1, 1, 1, 1, 1],
        [3, 7, 33, 1, 97],
        [3, 33, 7, 5, 3],
        [3, 33, 7, 1, 1],
        [1, 80, 7, 2, 5],
    ];

    public static TheoryData<string, int, bool> Cases()
    {
        var data = new TheoryData<string, int, bool>();
        foreach (var device in TestDevices.Names)
            for (int i = 0; i < Shapes.Length; i++)
            {
                data.Add(device, i, false);
                data.Add(device, i, true);
            }
        return data;
    }

    static PointwiseShape ShapeOf(int index)
    {
        var p = Shapes[index];
        return new PointwiseShape(p[0], p[1], p[2], p[3] * p[4]);
    }

    static double[] Forward(double[] x, double[] w, double[]? bias, PointwiseShape s) =>
        ConvReference.Forward(x, w, bias, s.Batch, s.InChannels, 1, s.Positions, s.OutChannels, 1, 1, 1, 1, 0);

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesReference(string device, int shape, bool withBias)
    {
        var dev = TestDevices.Get(device);
        var s = ShapeOf(shape);
        var x = Reference.Random(s.InputLength, 1);
        var w = Reference.Random(s.WeightLength, 2);
        var b = Reference.Random(s.OutChannels, 3);
        using var tx = dev.Upload(x, x.Length);
        using var tw = dev.Upload(w, w.Length);
        using var tb = dev.Upload(b, b.Length);
        using var ty = Reference.NaNs(dev, s.OutputLength);
        var conv = new PointwiseConv(dev);
        if (withBias) conv.Forward(tx.View, tw.View, tb.View, ty.View, s);
        else conv.Forward(tx.View, tw.View, ty.View, s);
        var expected = Forward(Reference.ToDouble(x), Reference.ToDouble(w), withBias ? Reference.ToDouble(b) : null, s);
        Reference.AssertClose(expected, ty.ToHost(), 1e-5, $"y {s}");
    }

    /// <summary>dx by finite differences; with <paramref name="accumulate"/> dx starts from random values
    /// that the gradient is added to.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardDataMatchesFiniteDifferences(string device, int shape, bool accumulate)
    {
        var dev = TestDevices.Get(device);
        var s = ShapeOf(shape);
        var x = Reference.Random(s.InputLength, 4);
        var w = Reference.Random(s.WeightLength, 5);
        var r = Reference.Random(s.OutputLength, 6);
        var dx0 = Reference.Random(s.InputLength, 7);
        using var tw = dev.Upload(w, w.Length);
        using var tdy = dev.Upload(r, r.Length);
        using var tdx = accumulate ? dev.Upload(dx0, dx0.Length) : Reference.NaNs(dev, s.InputLength);
        new PointwiseConv(dev).BackwardData(tdy.View, tw.View, tdx.View, s, accumulate);
        var (wd, rd) = (Reference.ToDouble(w), Reference.ToDouble(r));
        var numeric = Reference.NumericGradient(xs => Reference.Dot(Forward(xs, wd, null, s), rd), Reference.ToDouble(x), 1e-3);
        if (accumulate)
            for (int i = 0; i < numeric.Length; i++) numeric[i] += dx0[i];
        Reference.AssertNormClose(numeric, tdx.ToHost(), 1e-5, $"dx {s}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void WeightAndBiasGradientsMatchFiniteDifferences(string device, int shape, bool withBias)
    {
        var dev = TestDevices.Get(device);
        var s = ShapeOf(shape);
        var x = Reference.Random(s.InputLength, 8);
        var w = Reference.Random(s.WeightLength, 9);
        var b = Reference.Random(s.OutChannels, 10);
        var r = Reference.Random(s.OutputLength, 11);
        using var tx = dev.Upload(x, x.Length);
        using var tdy = dev.Upload(r, r.Length);
        using var tdw = Reference.NaNs(dev, s.WeightLength);
        using var tdb = Reference.NaNs(dev, s.OutChannels);
        var conv = new PointwiseConv(dev);
        conv.BackwardWeight(tdy.View, tx.View, tdw.View, s);
        var (xd, wd, bd, rd) = (Reference.ToDouble(x), Reference.ToDouble(w), Reference.ToDouble(b), Reference.ToDouble(r));
        var dw = Reference.NumericGradient(ws => Reference.Dot(Forward(xd, ws, withBias ? bd : null, s), rd), wd, 1e-3);
        Reference.AssertNormClose(dw, tdw.ToHost(), 1e-5, $"dw {s}");
        if (!withBias) return;
        conv.BiasGradient(tdy.View, tdb.View, s);
        var db = Reference.NumericGradient(bs => Reference.Dot(Forward(xd, wd, bs, s), rd), bd, 1e-3);
        Reference.AssertNormClose(db, tdb.ToHost(), 1e-5, $"dbias {s}");
    }

    [Fact]
    public void RejectsMismatchedLengths()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var conv = new PointwiseConv(dev);
        var s = new PointwiseShape(2, 3, 4, 5);
        using var x = dev.Allocate(s.InputLength);
        using var w = dev.Allocate(s.WeightLength);
        using var y = dev.Allocate(s.OutputLength);
        var e = Assert.Throws<ArgumentException>(() => conv.Forward(x.View, w.View, w.View, y.View, s));
        Assert.Contains("bias has", e.Message);
        e = Assert.Throws<ArgumentException>(() => conv.BackwardData(y.View, w.View, y.View, s));
        Assert.Contains("dx has", e.Message);
        Assert.Throws<ArgumentException>(() => conv.BackwardWeight(y.View, x.View, x.View, s));
        Assert.Throws<ArgumentException>(() => conv.BiasGradient(x.View, w.View, s));
        Assert.Throws<ArgumentException>(() => conv.Forward(x.View, w.View, y.View, s with { Positions = 0 }));
    }
}
