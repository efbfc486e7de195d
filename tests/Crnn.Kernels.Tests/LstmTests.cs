using Xunit;

namespace Crnn.Kernels.Tests;

public class LstmTests
{
    static double Sigmoid(double v) => 1 / (1 + Math.Exp(-v));

    /// <summary>
    /// float64 bidirectional LSTM written from the equations: per direction and sequence, zero initial state,
    /// the reverse direction walking t = T−1…0, parameters read at the offsets LstmShape documents.
    /// </summary>
    static double[] ReferenceForward(double[] x, double[] p, LstmShape s)
    {
        int bt = s.Batch, T = s.Steps, inp = s.Input, H = s.Hidden;
        var y = new double[bt * T * 2 * H];
        for (int d = 0; d < 2; d++)
            for (int b = 0; b < bt; b++)
            {
                var h = new double[H];
                var c = new double[H];
                for (int step = 0; step < T; step++)
                {
                    int t = d == 0 ? step : T - 1 - step;
                    var hNew = new double[H];
                    var cNew = new double[H];
                    for (int j = 0; j < H; j++)
                    {
                        var pre = new double[4];
                        for (int k = 0; k < 4; k++)
                        {
                            int r = k * H + j;
                            double v = p[s.BiasIh(d) + r] + p[s.BiasHh(d) + r];
                            for (int m = 0; m < inp; m++) v += p[s.WeightIh(d) + r * inp + m] * x[(b * T + t) * inp + m];
                            for (int m = 0; m < H; m++) v += p[s.WeightHh(d) + r * H + m] * h[m];
                            pre[k] = v;
                        }
                        cNew[j] = Sigmoid(pre[1]) * c[j] + Sigmoid(pre[0]) * Math.Tanh(pre[2]);
                        hNew[j] = Sigmoid(pre[3]) * Math.Tanh(cNew[j]);
                    }
                    h = hNew;
                    c = cNew;
                    for (int j = 0; j < H; j++) y[(b * T + t) * 2 * H + d * H + j] = h[j];
                }
            }
        return y;
    }

    /// <summary>
    /// float64 backpropagation through time of <see cref="ReferenceForward"/> from dy: dx and the parameter
    /// gradient (same layout). Written from the equations and itself checked against finite differences
    /// (<see cref="ReferenceBackwardMatchesFiniteDifferences"/>), so it can stand in for them at model sizes.
    /// </summary>
    static (double[] Dx, double[] Dp) ReferenceBackward(double[] x, double[] p, double[] dy, LstmShape s)
    {
        int bt = s.Batch, T = s.Steps, inp = s.Input, H = s.Hidden;
        var dx = new double[x.Length];
        var dp = new double[p.Length];
        for (int d = 0; d < 2; d++)
            for (int b = 0; b < bt; b++)
            {
                // Forward again, keeping every step's gates and states (processing order).
                var gates = new double[T][];
                var hs = new double[T + 1][];
                var cs = new double[T + 1][];
                hs[0] = new double[H];
                cs[0] = new double[H];
                for (int step = 0; step < T; step++)
                {
                    int t = d == 0 ? step : T - 1 - step;
                    var g = gates[step] = new double[4 * H];
                    hs[step + 1] = new double[H];
                    cs[step + 1] = new double[H];
                    for (int r = 0; r < 4 * H; r++)
                    {
                        double v = p[s.BiasIh(d) + r] + p[s.BiasHh(d) + r];
                        for (int m = 0; m < inp; m++) v += p[s.WeightIh(d) + r * inp + m] * x[(b * T + t) * inp + m];
                        for (int m = 0; m < H; m++) v += p[s.WeightHh(d) + r * H + m] * hs[step][m];
                        g[r] = r / H == 2 ? Math.Tanh(v) : Sigmoid(v);
                    }
                    for (int j = 0; j < H; j++)
                    {
                        cs[step + 1][j] = g[H + j] * cs[step][j] + g[j] * g[2 * H + j];
                        hs[step + 1][j] = g[3 * H + j] * Math.Tanh(cs[step + 1][j]);
                    }
                }
                var dh = new double[H];
                var dc = new double[H];
                for (int step = T - 1; step >= 0; step--)
                {
                    int t = d == 0 ? step : T - 1 - step;
                    var g = gates[step];
                    var dPre = new double[4 * H];
                    for (int j = 0; j < H; j++)
                    {
                        double dhj = dh[j] + dy[(b * T + t) * 2 * H + d * H + j];
                        double tc = Math.Tanh(cs[step + 1][j]);
                        double dcj = dc[j] + dhj * g[3 * H + j] * (1 - tc * tc);
                        dPre[j] = dcj * g[2 * H + j] * g[j] * (1 - g[j]);
                        dPre[H + j] = dcj * cs[step][j] * g[H + j] * (1 - g[H + j]);
                        dPre[2 * H + j] = dcj * g[j] * (1 - g[2 * H + j] * g[2 * H + j]);
                        dPre[3 * H + j] = dhj * tc * g[3 * H + j] * (1 - g[3 * H + j]);
                        dc[j] = dcj * g[H + j];
                    }
                    Array.Clear(dh);
                    for (int r = 0; r < 4 * H; r++)
                    {
                        dp[s.BiasIh(d) + r] += dPre[r];
                        dp[s.BiasHh(d) + r] += dPre[r];
                        for (int m = 0; m < inp; m++)
                        {
                            dp[s.WeightIh(d) + r * inp + m] += dPre[r] * x[(b * T + t) * inp + m];
                            dx[(b * T + t) * inp + m] += dPre[r] * p[s.WeightIh(d) + r * inp + m];
                        }
                        for (int m = 0; m < H; m++)
                        {
                            dp[s.WeightHh(d) + r * H + m] += dPre[r] * hs[step][m];
                            dh[m] += dPre[r] * p[s.WeightHh(d) + r * H + m];
                        }
                    }
                }
            }
        return (dx, dp);
    }

    /// <summary>Runs forward (and, given dy, backward) of one layer on the device; returns y, dx, dParameters.</summary>
    sealed class DeviceLayer : IDisposable
    {
        readonly Lstm _lstm;
        readonly LstmShape _s;
        public readonly Tensor<float> Parameters, X, Y, Saved;

        public DeviceLayer(Device dev, Lstm lstm, LstmShape s, float[] parameters, float[] x)
        {
            _lstm = lstm;
            _s = s;
            Parameters = dev.Upload(parameters, s.ParameterCount);
            X = dev.Upload(x, s.InputLength);
            Y = Reference.NaNs(dev, s.OutputLength);
            Saved = Reference.NaNs(dev, s.SavedLength);
            lstm.Forward(s, Parameters.View, X.View, Y.View, Saved.View);
        }

        public (float[] Dx, float[] DParameters) Backward(Device dev, float[] dy)
        {
            using var tdy = dev.Upload(dy, _s.OutputLength);
            using var dx = Reference.NaNs(dev, _s.InputLength);
            using var dp = Reference.NaNs(dev, _s.ParameterCount);
            using var scratch = Reference.NaNs(dev, _s.ScratchLength);
            _lstm.Backward(_s, Parameters.View, X.View, Y.View, Saved.View, tdy.View, dx.View, dp.View, scratch.View);
            return (dx.ToHost(), dp.ToHost());
        }

        public void Dispose() { Parameters.Dispose(); X.Dispose(); Y.Dispose(); Saved.Dispose(); }
    }

    /// <summary>Weights small enough that the gates are not saturated, so every gradient path carries signal.</summary>
    static float[] RandomParameters(LstmShape s, int seed) => Reference.Random(s.ParameterCount, seed, -0.5f, 0.5f);

    /// <summary>Compares each parameter block of each direction separately, so a wrong block cannot hide.</summary>
    static void AssertParameterGradients(LstmShape s, double[] expected, float[] actual, double tol, string layer)
    {
        int g = s.Gates;
        for (int d = 0; d < 2; d++)
            foreach (var (name, offset, length) in new[]
            {
                ("dW_ih", s.WeightIh(d), g * s.Input), ("dW_hh", s.WeightHh(d), g * s.Hidden),
                ("db_ih", s.BiasIh(d), g), ("db_hh", s.BiasHh(d), g),
            })
            {
                // With one step the recurrent weights only ever meet the zero state: their gradient is exactly 0.
                if (name == "dW_hh" && s.Steps == 1)
                {
                    Assert.All(actual.Skip(offset).Take(length), v => Assert.Equal(0f, v));
                    continue;
                }
                Reference.AssertNormClose(expected[offset..(offset + length)], actual[offset..(offset + length)], tol, $"{layer}{name}[{d}]");
            }
    }

    /// <summary>Odd shapes on both devices: the host policy runs the recurrent products as GEMMs between step
    /// kernels, the gpu policy all steps in one persistent kernel per pass, with a barrier per step (~10–40 ms
    /// on the GPU-like device): T stays small there (the model's T = 25 is <see cref="SeedModelShapeUnderEachPolicy"/>).</summary>
    public static TheoryData<string, int, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int, int>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 1, 1, 1, 1);
            data.Add(device, 3, 5, 7, 5);
            data.Add(device, 3, 1, 33, 8);
            if (device == TestDevices.GpuLike) continue;
            data.Add(device, 1, 7, 33, 8);
            data.Add(device, 3, 7, 1, 8);
            data.Add(device, 1, 5, 7, 1);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesReference(string device, int batch, int steps, int input, int hidden)
    {
        var dev = TestDevices.Get(device);
        var s = new LstmShape(batch, steps, input, hidden);
        var p = RandomParameters(s, 1);
        var x = Reference.Random(s.InputLength, 2);
        using var layer = new DeviceLayer(dev, new Lstm(dev), s, p, x);
        Reference.AssertClose(ReferenceForward(Reference.ToDouble(x), Reference.ToDouble(p), s), layer.Y.ToHost(), 1e-5, "y");
    }

    /// <summary>The host inference recurrence (no saved gates) against the float64 reference and against the
    /// training forward: one and two rows, 3 to 17 rows (the GEMM against W_hhᵀ, batch slices), K over one packing slice
    /// (input 300, hidden 260), the cell update's sixteen lanes then eight (hidden 24); with the weights packed per call
    /// and packed in advance (on AVX-512 the recurrent product then reads the sequence in place: the same chains, so the
    /// same bits, except for one or two rows, which per call take dot products). Packed on AVX-512, each sequence run
    /// alone gives its bits in the batch (one row against the packed W_hhᵀ keeps the GEMM's chain).</summary>
    [Theory]
    [InlineData(1, 25, 40, 16)]
    [InlineData(2, 7, 33, 8)]
    [InlineData(3, 5, 7, 5)]
    [InlineData(9, 6, 20, 12)]
    [InlineData(5, 4, 11, 24)]
    [InlineData(17, 4, 9, 96)]
    [InlineData(4, 3, 300, 10)]
    [InlineData(3, 3, 5, 260)]
    public void InferenceMatchesReferenceAndTrainingForward(int batch, int steps, int input, int hidden)
    {
        var dev = TestDevices.Host;
        var s = new LstmShape(batch, steps, input, hidden);
        var p = RandomParameters(s, 11);
        var x = Reference.Random(s.InputLength, 12);
        var lstm = new Lstm(dev);
        using var layer = new DeviceLayer(dev, lstm, s, p, x);
        float[]? packedPerCall = null;
        foreach (bool packed in new[] { false, true })
        {
            using var y = Reference.NaNs(dev, s.OutputLength);
            using var projection = Reference.NaNs(dev, s.GatesLength);
            lstm.Infer(s, layer.Parameters.View, layer.X.View, y.View, projection.View, packed ? Lstm.PackForInference(p, 0, input, hidden) : null);
            var inferred = y.ToHost();
            Reference.AssertClose(ReferenceForward(Reference.ToDouble(x), Reference.ToDouble(p), s), inferred, 1e-5, $"inference y, packed {packed}");
            Reference.AssertClose(Reference.ToDouble(layer.Y.ToHost()), inferred, 1e-5, $"inference y vs training forward, packed {packed}");
            if (packedPerCall == null) packedPerCall = inferred;
            else if (batch >= 3) Assert.Equal(packedPerCall, inferred);
            if (packed && HostGemm.Kernel == HostKernel.Avx512) AssertEachSequenceAloneGivesItsBits(s, p, x, inferred);
        }
    }

    static void AssertEachSequenceAloneGivesItsBits(LstmShape s, float[] p, float[] x, float[] batched)
    {
        var dev = TestDevices.Host;
        var one = s with { Batch = 1 };
        var weights = Lstm.PackForInference(p, 0, s.Input, s.Hidden);
        using var tp = dev.Upload(p, p.Length);
        for (int b = 0; b < s.Batch; b++)
        {
            using var tx = dev.Upload(x.AsSpan(b * one.InputLength, one.InputLength).ToArray(), one.InputLength);
            using var y = Reference.NaNs(dev, one.OutputLength);
            using var projection = Reference.NaNs(dev, one.GatesLength);
            new Lstm(dev).Infer(one, tp.View, tx.View, y.View, projection.View, weights);
            Assert.Equal(batched.AsSpan(b * one.OutputLength, one.OutputLength).ToArray(), y.ToHost());
        }
    }

    [Fact]
    public void InferenceWithWeightsOfAnotherShapeIsRefused()
    {
        var dev = TestDevices.Host;
        var s = new LstmShape(2, 3, 5, 4);
        using var layer = new DeviceLayer(dev, new Lstm(dev), s, RandomParameters(s, 1), Reference.Random(s.InputLength, 2));
        using var y = dev.Allocate(s.OutputLength);
        using var projection = dev.Allocate(s.GatesLength);
        var other = Lstm.PackForInference(RandomParameters(new LstmShape(1, 1, 6, 4), 3), 0, 6, 4);
        Assert.Throws<ArgumentException>(() => new Lstm(dev).Infer(s, layer.Parameters.View, layer.X.View, y.View, projection.View, other));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BackwardMatchesFiniteDifferences(string device, int batch, int steps, int input, int hidden)
    {
        var dev = TestDevices.Get(device);
        var s = new LstmShape(batch, steps, input, hidden);
        var p = RandomParameters(s, 3);
        var x = Reference.Random(s.InputLength, 4);
        var r = Reference.Random(s.OutputLength, 5);
        using var layer = new DeviceLayer(dev, new Lstm(dev), s, p, x);
        var (dx, dp) = layer.Backward(dev, r);

        double[] xd = Reference.ToDouble(x), pd = Reference.ToDouble(p), rd = Reference.ToDouble(r);
        var expectedDx = Reference.NumericGradient(xs => Reference.Dot(ReferenceForward(xs, pd, s), rd), xd);
        var expectedDp = Reference.NumericGradient(ps => Reference.Dot(ReferenceForward(xd, ps, s), rd), pd);
        Reference.AssertNormClose(expectedDx, dx, 1e-5, "dx");
        AssertParameterGradients(s, expectedDp, dp, 1e-5, "");
    }

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferences()
    {
        var s = new LstmShape(2, 4, 3, 5);
        double[] x = Reference.ToDouble(Reference.Random(s.InputLength, 21)), p = Reference.ToDouble(RandomParameters(s, 22));
        double[] r = Reference.ToDouble(Reference.Random(s.OutputLength, 23));
        var (dx, dp) = ReferenceBackward(x, p, r, s);
        Reference.AssertNormClose(Reference.NumericGradient(xs => Reference.Dot(ReferenceForward(xs, p, s), r), x), Array.ConvertAll(dx, v => (float)v), 1e-6, "dx");
        Reference.AssertNormClose(Reference.NumericGradient(ps => Reference.Dot(ReferenceForward(x, ps, s), r), p), Array.ConvertAll(dp, v => (float)v), 1e-6, "dp");
    }

    /// <summary>The gpu-policy kernels' own tanh against float64 tanh: within 3 ulp from 1e-30 to past
    /// saturation, both signs, across the 0.625 switch between the polynomial and the exponential form; odd, and
    /// NaN stays NaN. (PTX's tanh.approx.f32, which XMath.Tanh becomes, is off by up to 2⁻¹¹.)</summary>
    [Fact]
    public void KernelTanhIsWithinThreeUlpOfFloat64()
    {
        double worst = 0, worstAt = 0;
        for (double m = 1e-30; m < 20; m *= 1.0007)
            foreach (float x in new[] { (float)m, -(float)m, BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(0.625f) + ((int)(m * 1e6) % 64 - 32)) })
            {
                double exact = Math.Tanh(x);
                float f = Math.Abs((float)exact);
                double err = Math.Abs(Lstm.Tanh(x) - exact) / (MathF.BitIncrement(f) - f);
                if (err > worst) (worst, worstAt) = (err, x);
                Assert.Equal(-Lstm.Tanh(x), Lstm.Tanh(-x));
            }
        Assert.True(worst <= 3, $"tanh off by {worst:F2} ulp at {worstAt:R}");
        Assert.Equal(1f, Lstm.Tanh(30f));
        Assert.True(float.IsNaN(Lstm.Tanh(float.NaN)));
    }

    /// <summary>
    /// The seed model's recurrence: hidden 96, 25 steps, batch 8, under each test device's policy, against the
    /// float64 forward and backpropagation. The input width is the model's 480 on the default device and 32 on
    /// the GPU-like one, where the input-projection GEMMs (tested at size in GemmTests) would cost minutes of
    /// barriers; the recurrence, which this test is about, is the same.
    /// </summary>
    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void SeedModelShapeUnderEachPolicy(string device)
    {
        var dev = TestDevices.Get(device);
        var s = new LstmShape(8, 25, device == TestDevices.GpuLike ? 32 : 480, 96);
        var p = Reference.Random(s.ParameterCount, 31, -0.1f, 0.1f);
        var x = Reference.Random(s.InputLength, 32);
        var r = Reference.Random(s.OutputLength, 33);
        using var layer = new DeviceLayer(dev, new Lstm(dev), s, p, x);
        var (dx, dp) = layer.Backward(dev, r);
        double[] xd = Reference.ToDouble(x), pd = Reference.ToDouble(p), rd = Reference.ToDouble(r);
        Reference.AssertClose(ReferenceForward(xd, pd, s), layer.Y.ToHost(), 1e-5, $"y {dev.Policy}");
        var (edx, edp) = ReferenceBackward(xd, pd, rd, s);
        Reference.AssertNormClose(edx, dx, 1e-5, $"dx {dev.Policy}");
        AssertParameterGradients(s, edp, dp, 1e-5, $"{dev.Policy} ");
    }

    /// <summary>The recurrence's launches: one per pass (forward, backward) under the gpu policy, none under host
    /// (its steps are host code between host GEMMs).</summary>
    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void RecurrenceLaunchesPerPass(string device)
    {
        var dev = TestDevices.Get(device);
        var s = new LstmShape(3, 5, 7, 5);
        var plan = new LaunchPlan();
        dev.Plan = plan;
        try
        {
            int Recurrence() => plan.Launches.Count(l => l.Kernel.StartsWith("Lstm."));
            using var layer = new DeviceLayer(dev, new Lstm(dev), s, RandomParameters(s, 41), Reference.Random(s.InputLength, 42));
            int perPass = dev.UsesHost ? 0 : 1;
            Assert.Equal(perPass, Recurrence());
            layer.Backward(dev, Reference.Random(s.OutputLength, 43));
            Assert.Equal(2 * perPass, Recurrence());
        }
        finally { dev.Plan = null; }
    }

    /// <summary>
    /// Gpu policy: two runs give the same bits, and so does a one-group grid, since groups own whole sequences
    /// (6 sequences over the GPU-like device's 4 groups: some groups run two).
    /// </summary>
    [Fact]
    public void GpuPolicyRepeatRunsAndGridSizesAreBitIdentical()
    {
        var s = new LstmShape(3, 6, 7, 9);
        var dev = TestDevices.Get(TestDevices.GpuLike);
        var first = RunBits(dev, s);
        Assert.Equal(first, RunBits(dev, s));
        using var oneGroup = Device.OpenCpu(Device.GpuLikeWarp, Device.GpuLikeWarps, 1, KernelPolicy.Gpu);
        Assert.Equal(first, RunBits(oneGroup, s));
    }

    /// <summary>y, saved, dx and dParameters of one forward and backward, as bits.</summary>
    static int[] RunBits(Device dev, LstmShape s)
    {
        using var layer = new DeviceLayer(dev, new Lstm(dev), s, RandomParameters(s, 44), Reference.Random(s.InputLength, 45));
        var (dx, dp) = layer.Backward(dev, Reference.Random(s.OutputLength, 46));
        float[] all = [.. layer.Y.ToHost(), .. layer.Saved.ToHost(), .. dx, .. dp];
        return Array.ConvertAll(all, BitConverter.SingleToInt32Bits);
    }

    /// <summary>Gpu policy with more hidden units than threads in a group (300 over 256): threads own several
    /// units, their gate rows and cells; checked against the float64 forward and backpropagation.</summary>
    [Fact]
    public void GpuPolicyHiddenWiderThanGroup()
    {
        var dev = TestDevices.Get(TestDevices.GpuLike);
        var s = new LstmShape(3, 4, 5, 300);
        Assert.True(s.Hidden > dev.GroupSize);
        var p = Reference.Random(s.ParameterCount, 51, -0.1f, 0.1f);
        var x = Reference.Random(s.InputLength, 52);
        var r = Reference.Random(s.OutputLength, 53);
        using var layer = new DeviceLayer(dev, new Lstm(dev), s, p, x);
        var (dx, dp) = layer.Backward(dev, r);
        double[] xd = Reference.ToDouble(x), pd = Reference.ToDouble(p), rd = Reference.ToDouble(r);
        Reference.AssertClose(ReferenceForward(xd, pd, s), layer.Y.ToHost(), 1e-5, "y");
        var (edx, edp) = ReferenceBackward(xd, pd, rd, s);
        Reference.AssertNormClose(edx, dx, 1e-5, "dx");
        AssertParameterGradients(s, edp, dp, 1e-5, "");
    }

    /// <summary>The model's neck: two layers, the second reading the first's [B, T, 2H] output.</summary>
    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TwoLayerStackForwardAndBackward(string device)
    {
        var dev = TestDevices.Get(device);
        var s1 = new LstmShape(2, 4, 7, 5);
        var s2 = new LstmShape(2, 4, 2 * s1.Hidden, 3);
        var p1 = RandomParameters(s1, 6);
        var p2 = RandomParameters(s2, 7);
        var x = Reference.Random(s1.InputLength, 8);
        var r = Reference.Random(s2.OutputLength, 9);
        var lstm = new Lstm(dev);
        using var layer1 = new DeviceLayer(dev, lstm, s1, p1, x);
        using var layer2 = new DeviceLayer(dev, lstm, s2, p2, layer1.Y.ToHost());
        var (dh1, dp2) = layer2.Backward(dev, r);
        var (dx, dp1) = layer1.Backward(dev, dh1);

        double[] xd = Reference.ToDouble(x), p1d = Reference.ToDouble(p1), p2d = Reference.ToDouble(p2), rd = Reference.ToDouble(r);
        double Loss(double[] xs, double[] q1, double[] q2) => Reference.Dot(ReferenceForward(ReferenceForward(xs, q1, s1), q2, s2), rd);
        Reference.AssertClose(ReferenceForward(ReferenceForward(xd, p1d, s1), p2d, s2), layer2.Y.ToHost(), 1e-5, "y2");
        Reference.AssertNormClose(Reference.NumericGradient(xs => Loss(xs, p1d, p2d), xd), dx, 1e-5, "dx");
        AssertParameterGradients(s1, Reference.NumericGradient(q => Loss(xd, q, p2d), p1d), dp1, 1e-5, "layer1.");
        AssertParameterGradients(s2, Reference.NumericGradient(q => Loss(xd, p1d, q), p2d), dp2, 1e-5, "layer2.");
    }

    [Fact]
    public void ParameterLayoutIsDocumentedOrder()
    {
        // The seed model's first layer: 480 inputs, hidden 96.
        var s = new LstmShape(32, 25, 480, 96);
        Assert.Equal(0, s.WeightIh(0));
        Assert.Equal(384 * 480, s.WeightIh(1));
        Assert.Equal(768 * 480, s.WeightHh(0));
        Assert.Equal(768 * 480 + 384 * 96, s.WeightHh(1));
        Assert.Equal(768 * 480 + 768 * 96, s.BiasIh(0));
        Assert.Equal(768 * 480 + 768 * 96 + 384, s.BiasIh(1));
        Assert.Equal(768 * 480 + 768 * 96 + 768, s.BiasHh(0));
        Assert.Equal(768 * 480 + 768 * 96 + 768 + 384, s.BiasHh(1));
        Assert.Equal(768 * (480 + 96 + 2), s.ParameterCount);
        // PyTorch's count for nn.LSTM(480, 96, bidirectional=True): 2·(4·96·(480+96) + 2·4·96).
        Assert.Equal(2 * (4 * 96 * (480 + 96) + 2 * 4 * 96), s.ParameterCount);
    }

    [Fact]
    public void RejectsMismatchedBuffers()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var s = new LstmShape(2, 3, 4, 5);
        using var p = dev.Allocate(s.ParameterCount);
        using var x = dev.Allocate(s.InputLength);
        using var y = dev.Allocate(s.OutputLength);
        using var saved = dev.Allocate(s.SavedLength);
        var lstm = new Lstm(dev);
        var e = Assert.Throws<ArgumentException>(() => lstm.Forward(s, p.View, y.View, y.View, saved.View));
        Assert.Contains("x has", e.Message);
        e = Assert.Throws<ArgumentException>(() => lstm.Forward(s with { Hidden = 0 }, p.View, x.View, y.View, saved.View));
        Assert.Contains("hidden 0", e.Message);
        e = Assert.Throws<ArgumentException>(() =>
            lstm.Backward(s, p.View, x.View, y.View, saved.View, y.View, x.View, p.View, saved.View));
        Assert.Contains("scratch", e.Message);
    }
}
