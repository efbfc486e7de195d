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
        var w = Reference.Random(s.WeightLength, 2);
        using var tx = dev.Upload(x, x.Length);
        using var tw = dev.Upload(w, w.Length);
        var expected = Forward(Reference.ToDouble(x), Reference.ToDouble(w), s);
        using var ty = Reference.NaNs(dev, s.OutputLength);
        new GroupedConv(dev).Forward(tx.View, tw.View, ty.View, s);
        Reference.AssertClose(expected, ty.ToHost(), 1e-5, $"y {dev.Policy} {s}");
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
        var (wd, rd) = (Reference.ToDouble(w), Reference.ToDouble(r));
        using var tdx = Reference.NaNs(dev, s.InputLength);
        new GroupedConv(dev).BackwardData(tdy.View, tw.View, tdx.View, s);
        var (numeric, kernel) = ConvReference.SampledGradient(xs => Reference.Dot(Forward(xs, wd, s), rd), Reference.ToDouble(x), tdx.ToHost());
        Reference.AssertNormClose(numeric, kernel, 1e-5, $"dx {dev.Policy} {s}");
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

    /// <summary>float64 gradients of Σ y·dy by the chain rule (every output's window scattered back): dx and dw.</summary>
    static (double[] Dx, double[] Dw) Gradients(double[] x, double[] w, double[] dy, ConvShape s)
    {
        int k = s.Kernel, oh = s.OutHeight, ow = s.OutWidth;
        var dx = new double[x.Length];
        var dw = new double[w.Length];
        for (int b = 0; b < s.Batch; b++)
            for (int c = 0; c < s.InChannels; c++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                    {
                        double g = dy[((b * s.InChannels + c) * oh + oy) * ow + ox];
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++)
                            {
                                int iy = oy * s.StrideH - s.Pad + ky, ix = ox * s.StrideW - s.Pad + kx;
                                if (iy < 0 || iy >= s.Height || ix < 0 || ix >= s.Width) continue;
                                int xi = ((b * s.InChannels + c) * s.Height + iy) * s.Width + ix, wi = (c * k + ky) * k + kx;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                    }
        return (dx, dw);
    }

    /// <summary>The host code over the model's geometry and around it: kernels 3 and 5, every stride pair up to 2,
    /// heights 1–16, widths 1, 7, 8, 9, 17 and 50 (vector tails of every length), against float64 sums.</summary>
    [Fact]
    public void HostSweepMatchesReference()
    {
        var dev = TestDevices.Host;
        var conv = new GroupedConv(dev);
        int seed = 0;
        foreach (int k in new[] { 3, 5 })
            foreach (var (sh, sw) in new[] { (1, 1), (2, 1), (1, 2), (2, 2) })
                foreach (int h in new[] { 1, 2, 3, 4, 7, 16 })
                    foreach (int width in new[] { 1, 7, 8, 9, 17, 50 })
                    {
                        var s = ConvShape.Depthwise(2, 3, h, width, k, sh, sw);
                        var x = Reference.Random(s.InputLength, ++seed);
                        var w = Reference.Random(s.WeightLength, ++seed);
                        var r = Reference.Random(s.OutputLength, ++seed);
                        using var tx = dev.Upload(x, x.Length);
                        using var tw = dev.Upload(w, w.Length);
                        using var tr = dev.Upload(r, r.Length);
                        using var ty = Reference.NaNs(dev, s.OutputLength);
                        using var tdx = Reference.NaNs(dev, s.InputLength);
                        using var tdw = Reference.NaNs(dev, w.Length);
                        conv.Forward(tx.View, tw.View, ty.View, s);
                        conv.BackwardData(tr.View, tw.View, tdx.View, s);
                        conv.BackwardWeight(tr.View, tx.View, tdw.View, s);
                        var (xd, wd, rd) = (Reference.ToDouble(x), Reference.ToDouble(w), Reference.ToDouble(r));
                        var (dx, dw) = Gradients(xd, wd, rd, s);
                        Reference.AssertClose(Forward(xd, wd, s), ty.ToHost(), 1e-5, $"y {s}");
                        Reference.AssertClose(dx, tdx.ToHost(), 1e-5, $"dx {s}");
                        Reference.AssertClose(dw, tdw.ToHost(), 1e-5, $"dw {s}");
                    }
    }

    /// <summary>Two host runs at a model shape give bit-identical results (fixed-order sums, whatever the threads do).</summary>
    [Fact]
    public void HostIsDeterministic()
    {
        var dev = TestDevices.Host;
        var conv = new GroupedConv(dev);
        var s = ConvShape.Depthwise(8, 40, 4, 50, 5, 2, 1);
        var x = Reference.Random(s.InputLength, 1);
        var w = Reference.Random(s.WeightLength, 2);
        var r = Reference.Random(s.OutputLength, 3);
        using var tx = dev.Upload(x, x.Length);
        using var tw = dev.Upload(w, w.Length);
        using var tr = dev.Upload(r, r.Length);
        float[][] Run()
        {
            using var ty = Reference.NaNs(dev, s.OutputLength);
            using var tdx = Reference.NaNs(dev, s.InputLength);
            using var tdw = Reference.NaNs(dev, w.Length);
            conv.Forward(tx.View, tw.View, ty.View, s);
            conv.BackwardData(tr.View, tw.View, tdx.View, s);
            conv.BackwardWeight(tr.View, tx.View, tdw.View, s);
            return [ty.ToHost(), tdx.ToHost(), tdw.ToHost()];
        }
        var first = Run();
        var second = Run();
        for (int i = 0; i < first.Length; i++) Assert.Equal(first[i], second[i]);
    }

    [Fact]
    public void RejectsBadLengths()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var conv = new GroupedConv(dev);
        var s = ConvShape.Depthwise(2, 3, 4, 5, 3, 2, 1);
        using var x = dev.Allocate(s.InputLength);
        using var w = dev.Allocate(s.WeightLength);
        using var y = dev.Allocate(s.OutputLength);
        // Twice the channels out: the same views no longer fit.
        var e = Assert.Throws<ArgumentException>(() => conv.Forward(x.View, w.View, y.View, s with { OutChannels = 6 }));
        Assert.Contains("w has", e.Message);
        e = Assert.Throws<ArgumentException>(() => conv.BackwardData(y.View, w.View, y.View, s));
        Assert.Contains("x has", e.Message);
        Assert.Throws<ArgumentException>(() => conv.BackwardWeight(y.View, x.View, y.View, s));
    }
}
