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

    // ---- The split kernels (fewer than BatchNorm.SplitBelowChannels channels, more than one piece per channel) ----

    /// <summary>Shapes whose channels span several pieces of <see cref="BatchNorm.PieceLength"/>: a ragged last piece
    /// (9 000 = 4 096 + 4 096 + 808 values), pieces starting inside an image (spatial 8 192, batch 1), many short images
    /// (8 500 values), each with and without the fused epilogue, and the seed model's first layer at batch 8 (6 400 values). The default device (host policy on the CPU, the gpu
    /// policy under CRNN_TEST_DEVICE) gets the first shape too.</summary>
    public static TheoryData<string, int, int, int, Activation, bool> SplitCases() => new()
    {
        { TestDevices.GpuLike, 3, 3, 3000, Activation.None, false },
        { TestDevices.GpuLike, 3, 3, 3000, Activation.HardSwish, true },
        { TestDevices.GpuLike, 1, 2, 8192, Activation.Relu, false },
        { TestDevices.GpuLike, 5, 1, 1700, Activation.None, true },
        { TestDevices.GpuLike, 8, 8, 800, Activation.Relu, false }, // the seed model's first BatchNorm (8 × 16×50) at batch 8
        { TestDevices.Default, 3, 3, 3000, Activation.None, false },
        { TestDevices.Default, 3, 3, 3000, Activation.HardSwish, true },
    };

    static float[] ResidualValues(int n) => Reference.Random(n, 7, -3f, 3f);
    static float[] OutputGradientValues(int n) => Reference.Random(n, 6);

    /// <summary>One training step's BatchNorm on <paramref name="dev"/>: the forward (with the fused epilogue when asked;
    /// in place, y = x, with <paramref name="inPlace"/>) then the backward (dx = dy in place). Returns y, act(y), saveMean,
    /// saveInvStd, runningMean, runningVar, dx, dgamma, dbeta.</summary>
    static float[][] TrainingStep(Device dev, int batch, int channels, int spatial, Activation act, bool residual, bool inPlace = false)
    {
        var bn = new BatchNorm(dev);
        using var inputs = new Inputs(dev, batch, channels, spatial).Upload();
        int n = inputs.N;
        using var x = dev.Upload(inputs.X, n); // the backward's x: an in-place forward overwrites inputs.TX
        using var tr = dev.Upload(ResidualValues(n), n);
        using var ty = Reference.NaNs(dev, n);
        using var ta = Reference.NaNs(dev, n);
        var y = inPlace ? inputs.TX : ty;
        bn.ForwardTraining(inputs.TX.View, inputs.TGamma.View, inputs.TBeta.View, y.View, inputs.TMean.View, inputs.TInvStd.View,
            inputs.TRunMean.View, inputs.TRunVar.View, batch, channels, spatial, 0.9f,
            act, act != Activation.None ? ta.View : default, residual ? tr.View : default);
        using var tdy = dev.Upload(OutputGradientValues(n), n);
        using var tdx = Reference.NaNs(dev, n);
        using var dg = Reference.NaNs(dev, channels);
        using var db = Reference.NaNs(dev, channels);
        var dx = inPlace ? tdy : tdx;
        bn.Backward(x.View, tdy.View, inputs.TGamma.View, inputs.TMean.View, inputs.TInvStd.View, dx.View, dg.View, db.View,
            batch, channels, spatial, act, act != Activation.None ? y.View : default);
        return [y.ToHost(), act != Activation.None ? ta.ToHost() : [], inputs.TMean.ToHost(), inputs.TInvStd.ToHost(),
            inputs.TRunMean.ToHost(), inputs.TRunVar.ToHost(), dx.ToHost(), dg.ToHost(), db.ToHost()];
    }

    static double ActivationOf(Activation act, double v) => act switch
    {
        Activation.Relu => Math.Max(v, 0),
        Activation.HardSwish => v * Math.Clamp(v + 3, 0, 6) / 6,
        _ => v,
    };

    static double DerivativeOf(Activation act, double v) => act switch
    {
        Activation.Relu => v > 0 ? 1 : 0,
        Activation.HardSwish => v < -3 ? 0 : v > 3 ? 1 : (2 * v + 3) / 6,
        _ => 1,
    };

    /// <summary>What <see cref="TrainingStep"/> should return, in float64 from the same inputs: the forward of
    /// <see cref="Forward"/> plus the residual and activation, the backward in closed form.</summary>
    static double[][] ExpectedTrainingStep(int batch, int channels, int spatial, Activation act, bool residual)
    {
        var probe = new Inputs(null!, batch, channels, spatial);
        int total = probe.N, n = batch * spatial;
        var x = Reference.ToDouble(probe.X);
        var gamma = Reference.ToDouble(probe.Gamma);
        var (y, mean, variance) = Forward(x, gamma, Reference.ToDouble(probe.Beta), batch, channels, spatial);
        var shortcut = ResidualValues(total);
        if (residual) for (int i = 0; i < total; i++) y[i] += shortcut[i];
        var r = OutputGradientValues(total);
        var g = new double[total];
        for (int i = 0; i < total; i++) g[i] = r[i] * DerivativeOf(act, y[i]);
        var (dx, dgamma, dbeta) = (new double[total], new double[channels], new double[channels]);
        var (invStd, runMean, runVar) = (new double[channels], new double[channels], new double[channels]);
        for (int c = 0; c < channels; c++)
        {
            invStd[c] = 1 / Math.Sqrt(variance[c] + Eps);
            runMean[c] = 0.9 * probe.RunningMean[c] + 0.1 * mean[c];
            runVar[c] = 0.9 * probe.RunningVar[c] + 0.1 * variance[c];
            foreach (int i in ChannelIndices(batch, channels, spatial, c))
            {
                dbeta[c] += g[i];
                dgamma[c] += g[i] * (x[i] - mean[c]) * invStd[c];
            }
            foreach (int i in ChannelIndices(batch, channels, spatial, c))
                dx[i] = gamma[c] * invStd[c] * (g[i] - dbeta[c] / n - (x[i] - mean[c]) * invStd[c] * dgamma[c] / n);
        }
        return [y, act != Activation.None ? Array.ConvertAll(y, v => ActivationOf(act, v)) : [], mean, invStd, runMean, runVar, dx, dgamma, dbeta];
    }

    static readonly string[] StepNames = ["y", "act(y)", "saveMean", "saveInvStd", "runningMean", "runningVar", "dx", "dgamma", "dbeta"];

    [Theory]
    [MemberData(nameof(SplitCases))]
    public void SplitChannelsMatchFloat64(string device, int batch, int channels, int spatial, Activation act, bool residual)
    {
        var actual = TrainingStep(TestDevices.Get(device), batch, channels, spatial, act, residual);
        var expected = ExpectedTrainingStep(batch, channels, spatial, act, residual);
        double[] tolerance = [1e-5, 1e-5, 1e-6, 1e-5, 1e-6, 1e-5, 1e-5, 1e-5, 1e-5];
        for (int k = 0; k < StepNames.Length; k++)
            if (StepNames[k] == "dx") Reference.AssertNormClose(expected[k], actual[k], tolerance[k], $"{StepNames[k]} on {device}");
            else Reference.AssertClose(expected[k], actual[k], tolerance[k], $"{StepNames[k]} on {device}");
    }

    /// <summary>The split backward against finite differences of the float64 forward (two pieces, the second of 104 values).</summary>
    [Fact]
    public void SplitBackwardMatchesFiniteDifferences()
    {
        var dev = TestDevices.Get(TestDevices.GpuLike);
        const int batch = 2, channels = 1, spatial = 2100;
        var actual = TrainingStep(dev, batch, channels, spatial, Activation.None, residual: false);
        var probe = new Inputs(null!, batch, channels, spatial);
        var x = Reference.ToDouble(probe.X);
        var gamma = Reference.ToDouble(probe.Gamma);
        var beta = Reference.ToDouble(probe.Beta);
        var r = Reference.ToDouble(OutputGradientValues(probe.N));
        double Loss(double[] xs, double[] g, double[] b) => Reference.Dot(Forward(xs, g, b, batch, channels, spatial).Y, r);
        Reference.AssertNormClose(Reference.NumericGradient(xs => Loss(xs, gamma, beta), x), actual[6], 1e-4, "dx");
        Reference.AssertNormClose(Reference.NumericGradient(g => Loss(x, g, beta), gamma), actual[7], 1e-5, "dgamma");
        Reference.AssertNormClose(Reference.NumericGradient(b => Loss(x, gamma, b), beta), actual[8], 1e-5, "dbeta");
    }

    /// <summary>y = x and dx = dy give the same bits as separate buffers on the split path (pieces of 4 096 and 904 values).</summary>
    [Theory]
    [InlineData(Activation.None, false)]
    [InlineData(Activation.HardSwish, true)]
    public void SplitInPlaceIsBitForBit(Activation act, bool residual)
    {
        var dev = TestDevices.Get(TestDevices.GpuLike);
        var separate = TrainingStep(dev, 2, 3, 2500, act, residual);
        var inPlace = TrainingStep(dev, 2, 3, 2500, act, residual, inPlace: true);
        for (int k = 0; k < StepNames.Length; k++) Assert.True(separate[k].SequenceEqual(inPlace[k]), StepNames[k]);
    }

    /// <summary>Grids of 1, 2, 4 (the GPU-like device) and 10 groups for 6 units give the same bits: every sum has a
    /// fixed order. The one-group device's launch record shows the split kernels ran.</summary>
    [Fact]
    public void SplitIsTheSameForAnyGridSize()
    {
        using var dev = Device.OpenCpu(Device.GpuLikeWarp, Device.GpuLikeWarps, 1, KernelPolicy.Gpu);
        dev.Plan = new LaunchPlan();
        var one = TrainingStep(dev, 2, 3, 2500, Activation.HardSwish, residual: true);
        Assert.Equal(["BatchNorm.PieceStatisticsKernel", "BatchNorm.NormalizePiecesKernel", "BatchNorm.PieceGradientSumsKernel",
            "BatchNorm.PieceInputGradientKernel"], dev.Plan.Launches.Select(l => l.Kernel));
        Assert.All(dev.Plan.Launches, l => Assert.Equal(1, l.Groups));
        dev.Plan = null;
        var grids = new List<float[][]> { TrainingStep(TestDevices.Get(TestDevices.GpuLike), 2, 3, 2500, Activation.HardSwish, residual: true) };
        foreach (int multiprocessors in new[] { 1, 5 }) // 2 and 10 groups of 256 threads
        {
            dev.PlanAsGpu(multiprocessors, dev.GroupSize);
            grids.Add(TrainingStep(dev, 2, 3, 2500, Activation.HardSwish, residual: true));
        }
        foreach (var other in grids)
            for (int k = 0; k < StepNames.Length; k++) Assert.True(one[k].SequenceEqual(other[k]), StepNames[k]);
    }

    /// <summary>The split is decided by the shape alone: fewer than 132 channels and more than one piece, whatever the grid.</summary>
    [Theory]
    [InlineData(2, 131, 2100, true)]
    [InlineData(2, 132, 2100, false)]
    [InlineData(2, 3, 2048, false)] // one piece: the split would only add a launch
    [InlineData(2, 3, 2049, true)]
    public void SplitsFewChannelsByShapeAlone(int batch, int channels, int spatial, bool split)
    {
        using var dev = Device.OpenCpu(2, 1, 1, KernelPolicy.Gpu);
        string[] kernels = split
            ? ["BatchNorm.PieceStatisticsKernel", "BatchNorm.NormalizePiecesKernel", "BatchNorm.PieceGradientSumsKernel", "BatchNorm.PieceInputGradientKernel"]
            : ["BatchNorm.ForwardTrainingGroupedKernel", "BatchNorm.BackwardGroupedKernel"];
        var bn = new BatchNorm(dev);
        using var x = dev.Allocate(batch * channels * spatial);
        using var v = dev.Allocate(channels);
        foreach (int multiprocessors in new[] { 1, 132 })
        {
            dev.PlanAsGpu(multiprocessors, 2048);
            dev.Plan = new LaunchPlan { DryRun = true };
            bn.ForwardTraining(x.View, v.View, v.View, x.View, v.View, v.View, v.View, v.View, batch, channels, spatial);
            bn.Backward(x.View, x.View, v.View, v.View, v.View, x.View, v.View, v.View, batch, channels, spatial);
            Assert.Equal(kernels, dev.Plan.Launches.Select(l => l.Kernel));
        }
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
