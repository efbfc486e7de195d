using ILGPU;
using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>
/// The inference forms of the convolutions and the bias: y = act((conv(x, w) − mean)·scale + shift) in one call
/// (BatchNorm in evaluation mode, <see cref="ChannelNorm"/>), against a float64 convolution with BatchNorm and
/// the activation applied in float64; on both devices, every activation; the 1×1 convolution also with its
/// weights packed in advance.
/// </summary>
public class FusedInferenceTests
{
    static double Act(Activation act, double v) => act switch
    {
        Activation.Relu => Math.Max(v, 0),
        Activation.HardSwish => v * Math.Clamp(v + 3, 0, 6) / 6,
        Activation.HardSigmoid => Math.Clamp(0.2 * v + 0.5, 0, 1),
        _ => v,
    };

    public static TheoryData<string, Activation> Cases()
    {
        var data = new TheoryData<string, Activation>();
        foreach (var device in TestDevices.Names)
            foreach (var act in Enum.GetValues<Activation>()) data.Add(device, act);
        return data;
    }

    static double[] Expected(double[] x, double[] w, Statistics n, ConvShape s, int groups, Activation act)
    {
        int plane = s.OutHeight * s.OutWidth;
        return ConvReference.Forward(x, w, null, s.Batch, s.InChannels, s.Height, s.Width, s.OutChannels, groups, s.Kernel, s.StrideH, s.StrideW, s.Pad)
            .Select((v, i) => Act(act, n.Apply(v, i / plane % s.OutChannels))).ToArray();
    }

    /// <summary>Host copies of a <see cref="ChannelNorm"/>: means in [−1, 1], scales around 1 of either sign (as
    /// γ/√σ² can be), shifts in [−1, 1].</summary>
    sealed record Statistics(float[] Mean, float[] Scale, float[] Shift)
    {
        public static Statistics Random(int channels, int seed) => new(Reference.Random(channels, seed),
            Reference.Random(channels, seed + 1, 0.5f, 2f).Select((v, i) => i % 3 == 1 ? -v : v).ToArray(), Reference.Random(channels, seed + 2));

        public double Apply(double v, int c) => (v - Mean[c]) * Scale[c] + Shift[c];

        public Uploaded Upload(Device dev)
        {
            var offset = Shift.Select((b, c) => (float)(b - (double)Mean[c] * Scale[c])).ToArray();
            return new(dev.Upload(Mean, Mean.Length), dev.Upload(Scale, Scale.Length), dev.Upload(Shift, Shift.Length), dev.Upload(offset, offset.Length));
        }
    }

    sealed record Uploaded(Tensor<float> Mean, Tensor<float> Scale, Tensor<float> Shift, Tensor<float> Offset) : IDisposable
    {
        public ChannelNorm Norm => new(Mean.View, Scale.View, Shift.View, Offset.View);
        public void Dispose() { Mean.Dispose(); Scale.Dispose(); Shift.Dispose(); Offset.Dispose(); }
    }

    delegate void FusedForward(ArrayView<float> x, ArrayView<float> w, ChannelNorm norm, ArrayView<float> y);

    /// <summary>Random x, w and statistics for <paramref name="s"/>, <paramref name="run"/> on the device, against <see cref="Expected"/>.</summary>
    static void AssertFused(Device dev, ConvShape s, int groups, int weights, Activation act, int seed, FusedForward run)
    {
        var (x, w) = (Reference.Random(s.InputLength, seed), Reference.Random(weights, seed + 1));
        var statistics = Statistics.Random(s.OutChannels, seed + 2);
        using var tx = dev.Upload(x, x.Length);
        using var tw = dev.Upload(w, w.Length);
        using var norm = statistics.Upload(dev);
        using var ty = Reference.NaNs(dev, s.OutputLength);
        run(tx.View, tw.View, norm.Norm, ty.View);
        Reference.AssertClose(Expected(Reference.ToDouble(x), Reference.ToDouble(w), statistics, s, groups, act), ty.ToHost(), 1e-5, $"{act} {s}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DenseConvolution(string device, Activation act)
    {
        var dev = TestDevices.Get(device);
        var s = ConvShape.Dense(2, 3, 9, 21, 8, 3, 2, 2, 1); // the stem's geometry
        AssertFused(dev, s, 1, s.WeightLength, act, 1,
            (x, w, norm, y) => new GroupedConv(dev).Forward(x, w, norm, y, s, act));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DepthwiseConvolution(string device, Activation act)
    {
        var dev = TestDevices.Get(device);
        foreach (var s in new[] { ConvShape.Depthwise(2, 5, 4, 50, 5, 2, 1), ConvShape.Depthwise(1, 3, 7, 9, 3, 2, 2) })
            AssertFused(dev, s, s.InChannels, s.WeightLength, act, 4,
                (x, w, norm, y) => new GroupedConv(dev).Forward(x, w, norm, y, s, act));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PointwiseConvolution(string device, Activation act)
    {
        var dev = TestDevices.Get(device);
        // K over one packing slice (300 > 256) and M, N not multiples of the micro-kernel's 6×16; the images'
        // columns side by side in one product, panels and column blocks (192) straddling images (9·100, 5·37).
        foreach (var (batch, cin, cout, positions) in new[] { (3, 300, 13, 50), (1, 8, 40, 100), (2, 7, 5, 1), (9, 16, 7, 100), (5, 24, 20, 37) })
        {
            var ps = new PointwiseShape(batch, cin, cout, positions);
            var s = ConvShape.Dense(batch, cin, 1, positions, cout, 1, 1, 1, 0);
            var (x, w) = (Reference.Random(ps.InputLength, 7), Reference.Random(ps.WeightLength, 8));
            var statistics = Statistics.Random(cout, 9);
            var expected = Expected(Reference.ToDouble(x), Reference.ToDouble(w), statistics, s, 1, act);
            using var tx = dev.Upload(x, x.Length);
            using var tw = dev.Upload(w, w.Length);
            using var norm = statistics.Upload(dev);
            // Packed weights take the host's in-place path on AVX-512 (B read where it lies, all of K in registers):
            // the same chains, so the same bits as the packing GEMM.
            float[]? unpacked = null;
            foreach (var packed in new[] { null, PackedOperand.RowsAsA(w, 0, cout, cin) })
            {
                using var ty = Reference.NaNs(dev, ps.OutputLength);
                new PointwiseConv(dev).Forward(tx.View, tw.View, norm.Norm, ty.View, ps, act, packed);
                var y = ty.ToHost();
                Reference.AssertClose(expected, y, 1e-5, $"pointwise {act} {ps} packed {packed != null}");
                if (unpacked == null) unpacked = y;
                else Assert.Equal(unpacked, y);
                // A residual shortcut added in the host epilogue: the same bits as adding it after the convolution.
                var residual = Reference.Random(ps.OutputLength, 10);
                using var tr = dev.Upload(residual, residual.Length);
                using var tyr = Reference.NaNs(dev, ps.OutputLength);
                bool added = new PointwiseConv(dev).Forward(tx.View, tw.View, norm.Norm, tyr.View, ps, act, packed, tr.View);
                Assert.Equal(dev.UsesHost && positions > 1, added);
                Assert.Equal(added ? y.Select((v, i) => residual[i] + v).ToArray() : y, tyr.ToHost());
            }
            // With a bias (squeeze-excite's form): mean 0, scale 1.
            var biasOnly = statistics with { Mean = new float[cout], Scale = [.. Enumerable.Repeat(1f, cout)] };
            using var yb = Reference.NaNs(dev, ps.OutputLength);
            new PointwiseConv(dev).Forward(tx.View, tw.View, norm.Shift.View, yb.View, ps, act);
            Reference.AssertClose(Expected(Reference.ToDouble(x), Reference.ToDouble(w), biasOnly, s, 1, act), yb.ToHost(), 1e-5, $"pointwise + bias {act} {ps}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BiasAndBatchNormWithActivation(string device, Activation act)
    {
        var dev = TestDevices.Get(device);
        var y = Reference.Random(3 * 5 * 19, 10);
        var statistics = Statistics.Random(5, 11);
        var bias = new Bias(dev);
        using var norm = statistics.Upload(dev);
        using (var ty = dev.Upload(y, y.Length))
        {
            bias.Add(ty.View, norm.Shift.View, 3, 5, 19, act);
            Reference.AssertClose(y.Select((v, i) => Act(act, (double)v + statistics.Shift[i / 19 % 5])).ToArray(), ty.ToHost(), 1e-6, $"bias {act}");
        }
        using (var ty = dev.Upload(y, y.Length))
        {
            bias.Normalize(ty.View, norm.Norm, 3, 5, 19, act);
            Reference.AssertClose(y.Select((v, i) => Act(act, statistics.Apply(v, i / 19 % 5))).ToArray(), ty.ToHost(), 1e-6, $"batchnorm {act}");
        }
    }

    [Fact]
    public void PackedWeightsOfAnotherShapeAreRefused()
    {
        var dev = TestDevices.Host;
        var ps = new PointwiseShape(1, 8, 6, 20);
        using var x = dev.Allocate(ps.InputLength);
        using var w = dev.Allocate(ps.WeightLength);
        using var statistics = dev.Allocate(6);
        using var y = dev.Allocate(ps.OutputLength);
        var norm = new ChannelNorm(statistics.View, statistics.View, statistics.View, statistics.View);
        var wrong = PackedOperand.RowsAsA(new float[7 * 8], 0, 7, 8);
        Assert.Throws<ArgumentException>(() => new PointwiseConv(dev).Forward(x.View, w.View, norm, y.View, ps, Activation.Relu, wrong));
        Assert.Throws<ArgumentException>(() => new PointwiseConv(dev).Forward(x.View, w.View, norm with { Mean = statistics.View.SubView(0, 5) }, y.View, ps, Activation.Relu));
        Assert.Throws<ArgumentException>(() => PackedOperand.RowsAsA(new float[10], 0, 3, 4)); // 12 values needed
    }

    /// <summary>The host's fused squeeze-excite against float64: mean, relu(W1·m + b1), hardsigmoid(W2·· + b2), x·gate.</summary>
    [Fact]
    public void SqueezeExciteOnTheHost()
    {
        var dev = TestDevices.Host;
        const int batch = 3, channels = 20, squeeze = 5, spatial = 37;
        var x = Reference.Random(batch * channels * spatial, 12);
        var (w1, b1, w2, b2) = (Reference.Random(squeeze * channels, 13), Reference.Random(squeeze, 14), Reference.Random(channels * squeeze, 15), Reference.Random(channels, 16));
        var expected = new double[x.Length];
        for (int b = 0; b < batch; b++)
        {
            var mean = Enumerable.Range(0, channels).Select(c => Enumerable.Range(0, spatial).Average(i => (double)x[(b * channels + c) * spatial + i])).ToArray();
            var hidden = Enumerable.Range(0, squeeze).Select(j => Math.Max(0, b1[j] + Enumerable.Range(0, channels).Sum(c => (double)w1[j * channels + c] * mean[c]))).ToArray();
            for (int c = 0; c < channels; c++)
            {
                double gate = Act(Activation.HardSigmoid, b2[c] + Enumerable.Range(0, squeeze).Sum(j => (double)w2[c * squeeze + j] * hidden[j]));
                for (int i = 0; i < spatial; i++) expected[(b * channels + c) * spatial + i] = x[(b * channels + c) * spatial + i] * gate;
            }
        }
        using var tx = dev.Upload(x, x.Length);
        using var t1 = dev.Upload(w1, w1.Length);
        using var tb1 = dev.Upload(b1, b1.Length);
        using var t2 = dev.Upload(w2, w2.Length);
        using var tb2 = dev.Upload(b2, b2.Length);
        using var ty = Reference.NaNs(dev, x.Length);
        new ChannelScale(dev).SqueezeExcite(tx.View, t1.View, tb1.View, t2.View, tb2.View, ty.View, batch, channels, squeeze, spatial);
        var y = ty.ToHost();
        Reference.AssertClose(expected, y, 1e-5, "squeeze-excite");
        // The gates alone (the next 1×1 convolution scales its input): x·gate gives the same bits as the scaled map.
        using var gates = Reference.NaNs(dev, batch * channels);
        new ChannelScale(dev).SqueezeExcite(tx.View, t1.View, tb1.View, t2.View, tb2.View, default, batch, channels, squeeze, spatial, gates.View);
        var g = gates.ToHost();
        Assert.Equal(y, x.Select((v, i) => v * g[i / spatial]).ToArray());
    }

    /// <summary>A 1×1 convolution that scales its input's channels as it reads them (squeeze-excite's gates, AVX-512 host
    /// path) gives the same bits as the convolution of the scaled input; strips straddling images (37 and 100 positions)
    /// and a last partial strip; elsewhere it is refused.</summary>
    [Fact]
    public void PointwiseConvolutionScalesItsInput()
    {
        var dev = TestDevices.Host;
        foreach (var (batch, cin, cout, positions) in new[] { (5, 24, 20, 37), (3, 300, 13, 100), (1, 16, 8, 50) })
        {
            var ps = new PointwiseShape(batch, cin, cout, positions);
            var (x, w) = (Reference.Random(ps.InputLength, 17), Reference.Random(ps.WeightLength, 18));
            var g = Reference.Random(batch * cin, 19, 0f, 1f);
            var packed = PackedOperand.RowsAsA(w, 0, cout, cin);
            using var tx = dev.Upload(x, x.Length);
            using var tw = dev.Upload(w, w.Length);
            using var tg = dev.Upload(g, g.Length);
            using var norm = Statistics.Random(cout, 20).Upload(dev);
            using var y = Reference.NaNs(dev, ps.OutputLength);
            var conv = new PointwiseConv(dev);
            if (!conv.ScalesInput(ps))
            {
                Assert.Throws<ArgumentException>(() => conv.Forward(tx.View, tw.View, norm.Norm, y.View, ps, Activation.HardSwish, packed, inputScale: tg.View));
                continue;
            }
            conv.Forward(tx.View, tw.View, norm.Norm, y.View, ps, Activation.HardSwish, packed, inputScale: tg.View);
            var scaled = x.Select((v, i) => v * g[i / positions]).ToArray();
            using var ts = dev.Upload(scaled, scaled.Length);
            using var expected = Reference.NaNs(dev, ps.OutputLength);
            conv.Forward(ts.View, tw.View, norm.Norm, expected.View, ps, Activation.HardSwish, packed);
            Assert.Equal(expected.ToHost(), y.ToHost());
        }
    }
}
