using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>The host code for depthwise shapes (<see cref="HostDepthwise"/>, behind <see cref="GroupedConv"/> under the
/// host policy) over the model's geometry and around it; <see cref="GroupedConvTests"/> has the cases both policies run.</summary>
public class HostDepthwiseTests
{
    static double[] Forward(double[] x, double[] w, ConvShape s) =>
        ConvReference.Forward(x, w, null, s.Batch, s.InChannels, s.Height, s.Width, s.InChannels, s.InChannels, s.Kernel, s.StrideH, s.StrideW, s.Pad);

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

    /// <summary>The forward's row blocks: 64-wide (AVX-512) where the CPU has them, always 32-wide.</summary>
    public static TheoryData<bool> Widths() => HostDepthwise.UseAvx512 ? new() { true, false } : new() { false };

    /// <summary>The host code over the model's geometry and around it: kernels 3 and 5, every stride pair up to 2,
    /// heights 1–16, widths 1, 7, 8, 9, 17 and 50 (vector tails of every length), against float64 sums. The 64-wide
    /// forward also gives the same bits as the 32-wide one (the same fused multiply-adds per output).</summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void HostSweepMatchesReference(bool wide)
    {
        bool saved = HostDepthwise.UseAvx512;
        try { Sweep(wide); }
        finally { HostDepthwise.UseAvx512 = saved; }
    }

    static void Sweep(bool wide)
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
                        HostDepthwise.UseAvx512 = wide;
                        conv.Forward(tx.View, tw.View, ty.View, s);
                        if (wide)
                        {
                            using var narrow = Reference.NaNs(dev, s.OutputLength);
                            HostDepthwise.UseAvx512 = false;
                            conv.Forward(tx.View, tw.View, narrow.View, s);
                            Assert.Equal(narrow.ToHost(), ty.ToHost());
                        }
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
}
