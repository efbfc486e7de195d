using Xunit;

namespace Crnn.Kernels.Tests;

public class BatchNormTests
{
    const double Eps = 1e-5;

    /// <summary>float64 training-mode forward: per-channel batch mean and biased variance over (batch, spatial).</summary>
    static (double[] Y, double[] Mean, double[] Var) Forward(double[] x, double[] gamma, double[] beta, int batch, int channels, int spatial)
    {
        var y = new double[x.Length];
        var mean = new double[channels];
        var variance = new double[channels];
        int n = batch * spatial;
        for (int c = 0; c < channels; c++)
        {
            double sum = 0;
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < spatial; i++) sum += x[(b * channels + c) * spatial + i];
            mean[c] = sum / n;
            double sq = 0;
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < spatial; i++) sq += Math.Pow(x[(b * channels + c) * spatial + i] - mean[c], 2);
            variance[c] = sq / n;
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < spatial; i++)
                {
                    int k = (b * channels + c) * spatial + i;
                    y[k] = gamma[c] * (x[k] - mean[c]) / Math.Sqrt(variance[c] + Eps) + beta[c];
                }
        }
        return (y, mean, variance);
    }

    /// <summary>Shapes [batch, channels, H, W] on both devices; the GPU-like device (a barrier per tree level,
    /// each an OS wait there) gets few channels. The host code also runs on spatial runs of full vectors and tails.</summary>
    public static TheoryData<string, int, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int, int>();
        foreach (var device in TestDevices.Names)
        {
            bool cheap = device == TestDevices.Default;
            data.Add(device, 1, 7, 1, 97);
            data.Add(device, 3, 1, 5, 97);
            data.Add(device, 3, cheap ? 33 : 5, 3, 1);
            data.Add(device, 1, 1, 1, 1);
        }
        foreach (var (batch, channels, h, w) in new[] { (3, 5, 4, 50), (2, 3, 1, 16), (2, 2, 1, 13) })
            data.Add(TestDevices.HostOnly, batch, channels, h, w);
        return data;
    }

    sealed class Inputs(Device dev, int batch, int channels, int spatial) : IDisposable
    {
        public readonly int N = batch * channels * spatial;
        // Non-zero mean and scale, so a one-pass variance would lose digits.
        public readonly float[] X = Reference.Random(batch * channels * spatial, 1, 1f, 5f);
        public readonly float[] Gamma = Reference.Random(channels, 2, 0.5f, 1.5f);
        public readonly float[] Beta = Reference.Random(channels, 3);
        public readonly float[] RunningMean = Reference.Random(channels, 4);
        public readonly float[] RunningVar = Reference.Random(channels, 5, 0.5f, 1.5f);
        public Tensor<float> TX = null!, TGamma = null!, TBeta = null!, TRunMean = null!, TRunVar = null!, TMean = null!, TInvStd = null!;

        public Inputs Upload()
        {
            TX = dev.Upload(X, N);
            TGamma = dev.Upload(Gamma, channels);
            TBeta = dev.Upload(Beta, channels);
            TRunMean = dev.Upload(RunningMean, channels);
            TRunVar = dev.Upload(RunningVar, channels);
            TMean = Reference.NaNs(dev, channels);
            TInvStd = Reference.NaNs(dev, channels);
            return this;
        }

        public void ForwardTraining(BatchNorm bn, Tensor<float> y) =>
            bn.ForwardTraining(TX.View, TGamma.View, TBeta.View, y.View, TMean.View, TInvStd.View, TRunMean.View, TRunVar.View,
                batch, channels, spatial, 0.9f);

        public void Dispose()
        {
            foreach (var t in new[] { TX, TGamma, TBeta, TRunMean, TRunVar, TMean, TInvStd }) t?.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardTrainingMatchesReference(string device, int batch, int channels, int h, int w)
    {
        var dev = TestDevices.Get(device);
        int spatial = h * w;
        using var inputs = new Inputs(dev, batch, channels, spatial).Upload();
        using var ty = Reference.NaNs(dev, inputs.N);
        inputs.ForwardTraining(new BatchNorm(dev), ty);

        var (y, mean, variance) = Forward(Reference.ToDouble(inputs.X), Reference.ToDouble(inputs.Gamma), Reference.ToDouble(inputs.Beta), batch, channels, spatial);
        Reference.AssertClose(y, ty.ToHost(), 1e-5, "y");
        Reference.AssertClose(mean, inputs.TMean.ToHost(), 1e-6, "saveMean");
        Reference.AssertClose(Array.ConvertAll(variance, v => 1 / Math.Sqrt(v + Eps)), inputs.TInvStd.ToHost(), 1e-5, "saveInvStd");
        // Paddle's convention, with the biased batch variance.
        var runMean = new double[channels];
        var runVar = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            runMean[c] = 0.9 * inputs.RunningMean[c] + 0.1 * mean[c];
            runVar[c] = 0.9 * inputs.RunningVar[c] + 0.1 * variance[c];
        }
        Reference.AssertClose(runMean, inputs.TRunMean.ToHost(), 1e-6, "runningMean");
        Reference.AssertClose(runVar, inputs.TRunVar.ToHost(), 1e-5, "runningVar");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardMatchesFiniteDifferences(string device, int batch, int channels, int h, int w)
    {
        var dev = TestDevices.Get(device);
        int spatial = h * w;
        var bn = new BatchNorm(dev);
        using var inputs = new Inputs(dev, batch, channels, spatial).Upload();
        using var ty = Reference.NaNs(dev, inputs.N);
        inputs.ForwardTraining(bn, ty);
        var r = Reference.Random(inputs.N, 6);
        using var tdy = dev.Upload(r, inputs.N);
        using var tdx = Reference.NaNs(dev, inputs.N);
        using var tdgamma = Reference.NaNs(dev, channels);
        using var tdbeta = Reference.NaNs(dev, channels);
        bn.Backward(inputs.TX.View, tdy.View, inputs.TGamma.View, inputs.TMean.View, inputs.TInvStd.View,
            tdx.View, tdgamma.View, tdbeta.View, batch, channels, spatial);

        // Loss Σ y·r of the float64 training-mode forward, as a function of x, gamma and beta in turn.
        var x = Reference.ToDouble(inputs.X);
        var gamma = Reference.ToDouble(inputs.Gamma);
        var beta = Reference.ToDouble(inputs.Beta);
        var rd = Reference.ToDouble(r);
        double Loss(double[] xs, double[] g, double[] b) => Reference.Dot(Forward(xs, g, b, batch, channels, spatial).Y, rd);
        Reference.AssertNormClose(Reference.NumericGradient(xs => Loss(xs, gamma, beta), x), tdx.ToHost(), 1e-4, "dx");
        Reference.AssertNormClose(Reference.NumericGradient(g => Loss(x, g, beta), gamma), tdgamma.ToHost(), 1e-5, "dgamma");
        Reference.AssertNormClose(Reference.NumericGradient(b => Loss(x, gamma, b), beta), tdbeta.ToHost(), 1e-5, "dbeta");
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void InPlaceAndRepeatableBitForBit(string device)
    {
        var dev = TestDevices.Get(device);
        const int batch = 3, channels = 7, spatial = 33;
        var bn = new BatchNorm(dev);
        using var a = new Inputs(dev, batch, channels, spatial).Upload();
        using var b = new Inputs(dev, batch, channels, spatial).Upload();
        using var ty = Reference.NaNs(dev, a.N);
        a.ForwardTraining(bn, ty);
        b.ForwardTraining(bn, b.TX); // y = x
        Assert.Equal(ty.ToHost(), b.TX.ToHost());
        Assert.Equal(a.TRunVar.ToHost(), b.TRunVar.ToHost());

        var r = Reference.Random(a.N, 6);
        using var tdy = dev.Upload(r, a.N);
        using var tdyInPlace = dev.Upload(r, a.N);
        using var tdx = Reference.NaNs(dev, a.N);
        using var dg = Reference.NaNs(dev, channels);
        using var db = Reference.NaNs(dev, channels);
        using var dg2 = Reference.NaNs(dev, channels);
        using var db2 = Reference.NaNs(dev, channels);
        bn.Backward(a.TX.View, tdy.View, a.TGamma.View, a.TMean.View, a.TInvStd.View, tdx.View, dg.View, db.View, batch, channels, spatial);
        bn.Backward(a.TX.View, tdyInPlace.View, a.TGamma.View, a.TMean.View, a.TInvStd.View, tdyInPlace.View, dg2.View, db2.View, batch, channels, spatial);
        Assert.Equal(tdx.ToHost(), tdyInPlace.ToHost());
        Assert.Equal(dg.ToHost(), dg2.ToHost());
        Assert.Equal(db.ToHost(), db2.ToHost());
    }

    /// <summary>The fused epilogue (the shortcut added, the activation applied; its backward taken in) against float64
    /// and, bit for bit, against the same BatchNorm followed by the separate element-wise operations on the same device.</summary>
    [Theory]
    [InlineData(TestDevices.Default, Activation.HardSwish)]
    [InlineData(TestDevices.Default, Activation.Relu)]
    [InlineData(TestDevices.GpuLike, Activation.HardSwish)]
    [InlineData(TestDevices.HostOnly, Activation.HardSwish)]
    public void FusedEpilogueMatchesSeparateOperations(string device, Activation act)
    {
        var dev = TestDevices.Get(device);
        const int batch = 2, channels = 3, spatial = 37;
        var (bn, activations) = (new BatchNorm(dev), new Activations(dev));
        using var fused = new Inputs(dev, batch, channels, spatial).Upload();
        using var separate = new Inputs(dev, batch, channels, spatial).Upload();
        var residual = Reference.Random(fused.N, 7, -3f, 3f);
        using var tr = dev.Upload(residual, fused.N);
        using var ty = Reference.NaNs(dev, fused.N);
        using var ta = Reference.NaNs(dev, fused.N);
        bn.ForwardTraining(fused.TX.View, fused.TGamma.View, fused.TBeta.View, ty.View, fused.TMean.View, fused.TInvStd.View,
            fused.TRunMean.View, fused.TRunVar.View, batch, channels, spatial, act: act, activated: ta.View, residual: tr.View);
        using var sy = Reference.NaNs(dev, fused.N);
        using var sa = Reference.NaNs(dev, fused.N);
        separate.ForwardTraining(bn, sy);
        activations.Add(sy.View, tr.View, sy.View);
        activations.Forward(act, sy.View, sa.View);
        Assert.Equal(sy.ToHost(), ty.ToHost());
        Assert.Equal(sa.ToHost(), ta.ToHost());

        var (y, _, _) = Forward(Reference.ToDouble(fused.X), Reference.ToDouble(fused.Gamma), Reference.ToDouble(fused.Beta), batch, channels, spatial);
        for (int i = 0; i < y.Length; i++) y[i] += residual[i];
        Reference.AssertClose(y, ty.ToHost(), 1e-5, "y + residual");
        Reference.AssertClose(Array.ConvertAll(y, v => (double)Activations.Apply((int)act, (float)v)), ta.ToHost(), 1e-5, "act(y + residual)");

        var r = Reference.Random(fused.N, 6);
        using var tdy = dev.Upload(r, fused.N);
        using var tdx = Reference.NaNs(dev, fused.N);
        using var dg = Reference.NaNs(dev, channels);
        using var db = Reference.NaNs(dev, channels);
        bn.Backward(fused.TX.View, tdy.View, fused.TGamma.View, fused.TMean.View, fused.TInvStd.View, tdx.View, dg.View, db.View,
            batch, channels, spatial, act, ty.View);
        using var sdx = Reference.NaNs(dev, fused.N);
        using var sdg = Reference.NaNs(dev, channels);
        using var sdb = Reference.NaNs(dev, channels);
        activations.Backward(act, sy.View, tdy.View, sdx.View);
        bn.Backward(fused.TX.View, sdx.View, fused.TGamma.View, fused.TMean.View, fused.TInvStd.View, sdx.View, sdg.View, sdb.View,
            batch, channels, spatial);
        Assert.Equal(sdx.ToHost(), tdx.ToHost());
        Assert.Equal(sdg.ToHost(), dg.ToHost());
        Assert.Equal(sdb.ToHost(), db.ToHost());
    }

    /// <summary>Two host runs (forward and backward) at a model-like shape give bit-identical results.</summary>
    [Fact]
    public void HostIsDeterministic()
    {
        var dev = TestDevices.Host;
        const int batch = 8, channels = 24, spatial = 2 * 50;
        var bn = new BatchNorm(dev);
        var r = Reference.Random(batch * channels * spatial, 6);
        float[][] Run()
        {
            using var inputs = new Inputs(dev, batch, channels, spatial).Upload();
            using var ty = Reference.NaNs(dev, inputs.N);
            using var tdy = dev.Upload(r, inputs.N);
            using var tdx = Reference.NaNs(dev, inputs.N);
            using var dg = Reference.NaNs(dev, channels);
            using var db = Reference.NaNs(dev, channels);
            inputs.ForwardTraining(bn, ty);
            bn.Backward(inputs.TX.View, tdy.View, inputs.TGamma.View, inputs.TMean.View, inputs.TInvStd.View, tdx.View, dg.View, db.View,
                batch, channels, spatial);
            return [ty.ToHost(), inputs.TMean.ToHost(), inputs.TInvStd.ToHost(), inputs.TRunVar.ToHost(), tdx.ToHost(), dg.ToHost(), db.ToHost()];
        }
        var first = Run();
        var second = Run();
        for (int i = 0; i < first.Length; i++) Assert.Equal(first[i], second[i]);
    }

    /// <summary>conv2's BatchNorm: 480 channels over batch 8 × 2×50 positions, forward and backward against float64
    /// (the backward by its closed form, which BackwardMatchesFiniteDifferences checks on small shapes). On the
    /// default device only: the GPU-like CPU device pays ~28 barriers per channel, minutes for 480 channels; the
    /// gpu policy runs it with CRNN_TEST_DEVICE=cuda|opencl (tools/pocl-test.sh).</summary>
    [Fact]
    public void SeedModelHeadChannels()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        const int batch = 8, channels = 480, spatial = 100, n = batch * spatial;
        var bn = new BatchNorm(dev);
        using var inputs = new Inputs(dev, batch, channels, spatial).Upload();
        using var ty = Reference.NaNs(dev, inputs.N);
        inputs.ForwardTraining(bn, ty);
        var x = Reference.ToDouble(inputs.X);
        var gamma = Reference.ToDouble(inputs.Gamma);
        var (y, mean, variance) = Forward(x, gamma, Reference.ToDouble(inputs.Beta), batch, channels, spatial);
        Reference.AssertClose(y, ty.ToHost(), 1e-5, $"y {dev.Policy}");
        Reference.AssertClose(mean, inputs.TMean.ToHost(), 1e-6, "saveMean");

        var r = Reference.Random(inputs.N, 6);
        using var tdy = dev.Upload(r, inputs.N);
        using var tdx = Reference.NaNs(dev, inputs.N);
        using var tdgamma = Reference.NaNs(dev, channels);
        using var tdbeta = Reference.NaNs(dev, channels);
        bn.Backward(inputs.TX.View, tdy.View, inputs.TGamma.View, inputs.TMean.View, inputs.TInvStd.View,
            tdx.View, tdgamma.View, tdbeta.View, batch, channels, spatial);
        var dx = new double[inputs.N];
        var dgamma = new double[channels];
        var dbeta = new double[channels];
        for (int c = 0; c < channels; c++)
        {
            double invStd = 1 / Math.Sqrt(variance[c] + Eps), sumDy = 0, sumDyXhat = 0;
            foreach (int i in ChannelIndices(batch, channels, spatial, c))
            {
                sumDy += r[i];
                sumDyXhat += r[i] * (x[i] - mean[c]) * invStd;
            }
            dbeta[c] = sumDy;
            dgamma[c] = sumDyXhat;
            foreach (int i in ChannelIndices(batch, channels, spatial, c))
                dx[i] = gamma[c] * invStd * (r[i] - sumDy / n - (x[i] - mean[c]) * invStd * sumDyXhat / n);
        }
        Reference.AssertNormClose(dx, tdx.ToHost(), 1e-5, "dx");
        Reference.AssertClose(dgamma, tdgamma.ToHost(), 1e-5, "dgamma");
        Reference.AssertClose(dbeta, tdbeta.ToHost(), 1e-5, "dbeta");
    }

    static IEnumerable<int> ChannelIndices(int batch, int channels, int spatial, int c) =>
        Enumerable.Range(0, batch).SelectMany(b => Enumerable.Range((b * channels + c) * spatial, spatial));

    [Fact]
    public void RejectsBadArguments()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var bn = new BatchNorm(dev);
        using var x = dev.Allocate(2 * 3 * 5);
        using var c3 = dev.Allocate(3);
        using var c4 = dev.Allocate(4);
        var e = Assert.Throws<ArgumentException>(() => bn.ForwardTraining(x.View, c3.View, c4.View, x.View, c3.View, c3.View, c3.View, c3.View, 2, 3, 5));
        Assert.Contains("beta", e.Message);
        Assert.Throws<ArgumentException>(() => bn.ForwardTraining(x.View, c3.View, c3.View, x.View, c3.View, c3.View, c3.View, c3.View, 2, 3, 5, momentum: 1.5f));
    }
}
