using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>The grouped convolution against the float64 grouped reference: dense shapes (the stem's last), grouped ones
/// (channel multipliers, groups between 1 and the channels) and depthwise ones (which the host policy runs as host code;
/// <see cref="HostDepthwiseTests"/> sweeps that code).</summary>
public class GroupedConvTests
{
    /// <summary>(batch, in, height, width, out, kernel, strideH, strideW, pad, groups): ones, odd sizes, both
    /// strides, kernels 3 and 5, padding 0 and "same", grouped shapes, and the seed model's conv1 (3→8, 32×100, stride 2) last.</summary>
    static readonly int[][] Shapes =
    [
        [1, 1, 1, 1, 1, 3, 1, 1, 1, 1],
        [3, 7, 5, 97, 3, 3, 2, 2, 1, 1],
        [1, 33, 3, 7, 7, 5, 1, 1, 2, 1],
        [3, 3, 7, 1, 33, 5, 2, 1, 2, 1],
        [3, 7, 6, 9, 5, 3, 1, 2, 0, 1],
        [1, 2, 6, 6, 3, 3, 2, 2, 0, 1], // the last row and column feed no output: their dx is 0
        [2, 6, 5, 7, 4, 3, 1, 2, 1, 2],  // two groups of 3 → 2
        [1, 4, 6, 5, 8, 5, 2, 1, 2, 4],  // one input channel per group, two outputs each (a channel multiplier)
        [2, 6, 4, 9, 9, 3, 2, 1, 1, 3],  // three groups of 2 → 3
        // Depthwise with "same" padding: ones, odd sizes, heights and widths of 1, kernels 3 and 5, strides (1,1), (2,1), (2,2).
        [3, 7, 5, 97, 7, 3, 2, 1, 1, 7],
        [1, 33, 7, 9, 33, 5, 1, 1, 2, 33],
        [3, 7, 1, 97, 7, 5, 1, 1, 2, 7],
        [3, 33, 3, 1, 33, 5, 2, 1, 2, 33],
        [1, 7, 9, 11, 7, 3, 2, 2, 1, 7],
        [3, 1, 4, 50, 1, 5, 2, 1, 2, 1],
        [2, 5, 6, 7, 5, 3, 2, 1, 1, 5],
        [1, 3, 32, 100, 8, 3, 2, 2, 1, 1],
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
        return ConvShape.Grouped(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]);
    }

    static double[] Forward(double[] x, double[] w, ConvShape s) =>
        ConvReference.Forward(x, w, null, s.Batch, s.InChannels, s.Height, s.Width, s.OutChannels, s.Groups, s.Kernel, s.StrideH, s.StrideW, s.Pad);

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesReference(string device, int shape)
    {
        var dev = TestDevices.Get(device);
        var s = ShapeOf(shape);
        var x = Reference.Random(s.InputLength, 1);
        var w = Reference.Random(s.WeightLength, 2);
        using var tx = dev.Upload(x, x.Length);
        using var tw = dev.Upload(w, w.Length);
        using var ty = Reference.NaNs(dev, s.OutputLength);
        new GroupedConv(dev).Forward(tx.View, tw.View, ty.View, s);
        Reference.AssertClose(Forward(Reference.ToDouble(x), Reference.ToDouble(w), s), ty.ToHost(), 1e-5, $"y {s}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardDataMatchesFiniteDifferences(string device, int shape)
    {
        var dev = TestDevices.Get(device);
        var s = ShapeOf(shape);
        var x = Reference.Random(s.InputLength, 3);
        var w = Reference.Random(s.WeightLength, 4);
        var r = Reference.Random(s.OutputLength, 5);
        using var tw = dev.Upload(w, w.Length);
        using var tdy = dev.Upload(r, r.Length);
        using var tdx = Reference.NaNs(dev, s.InputLength);
        new GroupedConv(dev).BackwardData(tdy.View, tw.View, tdx.View, s);
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
        var w = Reference.Random(s.WeightLength, 7);
        var r = Reference.Random(s.OutputLength, 8);
        using var tx = dev.Upload(x, x.Length);
        using var tdy = dev.Upload(r, r.Length);
        var conv = new GroupedConv(dev);
        var (xd, rd) = (Reference.ToDouble(x), Reference.ToDouble(r));
        using var tdw = Reference.NaNs(dev, w.Length);
        conv.BackwardWeight(tdy.View, tx.View, tdw.View, s);
        var (numeric, kernel) = ConvReference.SampledGradient(ws => Reference.Dot(Forward(xd, ws, s), rd), Reference.ToDouble(w), tdw.ToHost());
        Reference.AssertNormClose(numeric, kernel, 1e-5, $"dw {dev.Policy} {s}");
    }

    [Fact]
    public void RejectsBadShapesAndLengths()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var conv = new GroupedConv(dev);
        var s = ConvShape.Dense(1, 2, 4, 4, 3, 3, 1, 1, 1);
        using var x = dev.Allocate(s.InputLength);
        using var w = dev.Allocate(s.WeightLength);
        using var y = dev.Allocate(s.OutputLength);
        var e = Assert.Throws<ArgumentException>(() => conv.Forward(x.View, y.View, y.View, s));
        Assert.Contains("w has", e.Message);
        Assert.Throws<ArgumentException>(() => conv.BackwardData(y.View, w.View, y.View, s));
        Assert.Throws<ArgumentException>(() => conv.Forward(x.View, w.View, y.View, ConvShape.Dense(1, 2, 1, 1, 3, 5, 1, 1, 1)));
        Assert.Throws<ArgumentException>(() => conv.Forward(x.View, w.View, y.View, ConvShape.Dense(1, 2, 4, 4, 3, 3, 0, 1, 1)));
        Assert.Throws<ArgumentException>(() => conv.BackwardWeight(y.View, x.View, x.View, s));
        e = Assert.Throws<ArgumentException>(() => conv.Forward(x.View, w.View, y.View, ConvShape.Grouped(1, 2, 4, 4, 3, 3, 1, 1, 1, 2)));
        Assert.Contains("2 groups must divide", e.Message);
        Assert.Throws<ArgumentException>(() => conv.Forward(x.View, w.View, y.View, s with { Groups = 0 }));
    }
}
