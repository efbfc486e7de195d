using Xunit;

namespace Crnn.Kernels.Tests;

public class DepthwiseConvTests
{
    /// <summary>(batch, channels, height, width, kernel, strideH, strideW) with "same" padding (k − 1)/2:
    /// ones, odd sizes, heights and widths of 1, kernels 3 and 5, strides (1,1), (2,1) and (2,2).</summary>
    static readonly int[][] Shapes =
    [
        [1, 1, 1, 1, 3, 1, 1],
        [3, 7, 5, 97, 3, 2, 1],
        [1, 33, 7, 9, 5, 1, 1],
        [3, 7, 1, 97, 5, 1, 1],
        [3, 33, 3, 1, 5, 2, 1],
        [1, 7, 9, 11, 3, 2, 2],
        [3, 1, 4, 50, 5, 2, 1],
    ];

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var device in TestDevices.Names)
            for (int i = 0; i < Shapes.Length; i++) data.Add(device, i);
        return data;
    }

    static ConvShape ShapeOf(int index)
    {
        var p = Shapes[index];
        return ConvShape.Depthwise(p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
    }

    static double[] Forward(double[] x, double[] w, ConvShape s) =>
        ConvReference.Forward(x, w, null, s.Batch, s.InChannels, s.Height, s.Width, s.InChannels, s.InChannels, s.Kernel, s.StrideH, s.StrideW, s.Pad);

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesReference(string device, int shape)
    {
        var dev = TestDevices.Get(device);
        var s = ShapeOf(shape);
        var x = Reference.Random(s.InputLength, 1);
        var w = Reference.Random(DepthwiseConv.WeightLength(s), 2);
        using var tx = dev.Upload(x, x.Length);
        using var tw = dev.Upload(w, w.Length);
        using var ty = Reference.NaNs(dev, s.OutputLength);
        new DepthwiseConv(dev).Forward(tx.View, tw.View, ty.View, s);
        Reference.AssertClose(Forward(Reference.ToDouble(x), Reference.ToDouble(w), s), ty.ToHost(), 1e-5, $"y {s}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardDataMatchesFiniteDifferences(string device, int shape)
    {
        var dev = TestDevices.Get(device);
        var s = ShapeOf(shape);
        var x = Reference.Random(s.InputLength, 3);
        var w = Reference.Random(DepthwiseConv.WeightLength(s), 4);
        var r = Reference.Random(s.OutputLength, 5);
        using var tw = dev.Upload(w, w.Length);
        using var tdy = dev.Upload(r, r.Length);
        using var tdx = Reference.NaNs(dev, s.InputLength);
        new DepthwiseConv(dev).BackwardData(tdy.View, tw.View, tdx.View, s);
        var (wd, rd) = (Reference.ToDouble(w), Reference.ToDouble(r));
        var (numeric, kernel) = ConvReference.SampledGradient(xs => Reference.Dot(Forward(xs, wd, s), rd), Reference.ToDouble(x), tdx.ToHost());
        Reference.AssertNormClose(numeric, kernel, 1e-5, $"dx {s}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardWeightMatchesFiniteDifferences(string device, int shape)
    {
        var dev = TestDevices.Get(device);
        var s = ShapeOf(shape);
        var x = Reference.Random(s.InputLength, 6);
        var w = Reference.Random(DepthwiseConv.WeightLength(s), 7);
        var r = Reference.Random(s.OutputLength, 8);
        using var tx = dev.Upload(x, x.Length);
        using var tdy = dev.Upload(r, r.Length);
        var conv = new DepthwiseConv(dev);
        var (xd, rd) = (Reference.ToDouble(x), Reference.ToDouble(r));
        foreach (var variant in ConvReference.WeightVariants(dev, w.Length))
        {
            using var tdw = Reference.NaNs(dev, w.Length);
            conv.BackwardWeight(tdy.View, tx.View, tdw.View, s, variant);
            var (numeric, kernel) = ConvReference.SampledGradient(ws => Reference.Dot(Forward(xd, ws, s), rd), Reference.ToDouble(w), tdw.ToHost());
            Reference.AssertNormClose(numeric, kernel, 1e-5, $"dw {variant} {s}");
        }
    }

    [Fact]
    public void RejectsChannelChangesAndBadLengths()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var conv = new DepthwiseConv(dev);
        var s = ConvShape.Depthwise(2, 3, 4, 5, 3, 2, 1);
        using var x = dev.Allocate(s.InputLength);
        using var w = dev.Allocate(DepthwiseConv.WeightLength(s));
        using var y = dev.Allocate(s.OutputLength);
        var e = Assert.Throws<ArgumentException>(() => conv.Forward(x.View, w.View, y.View, ConvShape.Dense(2, 3, 4, 5, 6, 3, 2, 1, 1)));
        Assert.Contains("keeps its channels", e.Message);
        e = Assert.Throws<ArgumentException>(() => conv.BackwardData(y.View, w.View, y.View, s));
        Assert.Contains("x has", e.Message);
        Assert.Throws<ArgumentException>(() => conv.BackwardWeight(y.View, x.View, y.View, s));
    }
}
