using Xunit;

namespace Crnn.Kernels.Tests;

public class CtcTests
{
    // ---------------------------------------------------------------- float64 references (independent of the kernels)

    static double[] LogSoftmax64(double[] x, int rows, int classes)
    {
        var y = new double[x.Length];
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            for (int k = 0; k < classes; k++) max = Math.Max(max, x[r * classes + k]);
            double sum = 0;
            for (int k = 0; k < classes; k++) sum += Math.Exp(x[r * classes + k] - max);
            for (int k = 0; k < classes; k++) y[r * classes + k] = x[r * classes + k] - max - Math.Log(sum);
        }
        return y;
    }

    static double LogAdd64(double a, double b)
    {
        if (double.IsNegativeInfinity(a)) return b;
        if (double.IsNegativeInfinity(b)) return a;
        return Math.Max(a, b) + Math.Log(1 + Math.Exp(-Math.Abs(a - b)));
    }

    /// <summary>Per-sample −log p(label|x) by the textbook alpha recursion; +∞ when no path exists.</summary>
    static double[] Loss64(double[] logits, int batch, int time, int classes, int[] labels, int[] lengths, int blank)
    {
        var logp = LogSoftmax64(logits, batch * time, classes);
        var loss = new double[batch];
        int offset = 0;
        for (int b = 0; b < batch; b++)
        {
            var ext = new int[2 * lengths[b] + 1];
            for (int s = 0; s < ext.Length; s++) ext[s] = s % 2 == 0 ? blank : labels[offset + s / 2];
            offset += lengths[b];
            double P(int t, int k) => logp[(b * time + t) * classes + k];
            var alpha = new double[ext.Length];
            Array.Fill(alpha, double.NegativeInfinity);
            alpha[0] = P(0, blank);
            if (ext.Length > 1) alpha[1] = P(0, ext[1]);
            for (int t = 1; t < time; t++)
            {
                var next = new double[ext.Length];
                for (int s = 0; s < ext.Length; s++)
                {
                    double a = alpha[s];
                    if (s > 0) a = LogAdd64(a, alpha[s - 1]);
                    if (s > 1 && ext[s] != blank && ext[s] != ext[s - 2]) a = LogAdd64(a, alpha[s - 2]);
                    next[s] = a + P(t, ext[s]);
                }
                alpha = next;
            }
            double ll = alpha[^1];
            if (ext.Length > 1) ll = LogAdd64(ll, alpha[^2]);
            loss[b] = -ll;
        }
        return loss;
    }

    /// <summary>−log of the summed probability of every T-step path that collapses to the label (tiny cases only).</summary>
    static double BruteForce64(double[] logits, int time, int classes, int[] label, int blank)
    {
        var logp = LogSoftmax64(logits, time, classes);
        var path = new int[time];
        double total = 0;
        for (long code = 0; code < (long)Math.Pow(classes, time); code++)
        {
            long c = code;
            for (int t = 0; t < time; t++) { path[t] = (int)(c % classes); c /= classes; }
            var collapsed = new List<int>();
            for (int t = 0; t < time; t++)
                if (path[t] != blank && (t == 0 || path[t] != path[t - 1])) collapsed.Add(path[t]);
            if (!collapsed.SequenceEqual(label)) continue;
            double lp = 0;
            for (int t = 0; t < time; t++) lp += logp[t * classes + path[t]];
            total += Math.Exp(lp);
        }
        return -Math.Log(total);
    }

    // ---------------------------------------------------------------- running the kernels

    static (float[] Loss, float[] Gradient) Run(string device, float[] logits, int batch, int time, int classes,
        int[] labels, int[] lengths, int blank = 0, bool zeroInfinity = false, float gradientScale = 1f)
    {
        var dev = TestDevices.Get(device);
        var ctc = new Ctc(dev);
        using var ws = ctc.CreateWorkspace(batch, time, classes);
        using var tLogits = dev.Upload(logits, logits.Length);
        using var tLabels = dev.Upload(labels.Length > 0 ? labels : [0], Math.Max(1, labels.Length));
        using var tLengths = dev.Upload(lengths, batch);
        using var tLoss = Reference.NaNs(dev, batch);
        using var tGrad = Reference.NaNs(dev, logits.Length);
        ctc.LossAndGradient(tLogits.View, tLabels.View, tLengths.View, tLoss.View, tGrad.View, ws, blank, zeroInfinity, gradientScale);
        return (tLoss.ToHost(), tGrad.ToHost());
    }

    /// <summary>Checks loss against the float64 reference and the gradient against its finite differences
    /// (at <paramref name="probe"/> indices only when given: large cases).</summary>
    static void CheckAgainstReference(float[] logits, int batch, int time, int classes, int[] labels, int[] lengths,
        int blank, (float[] Loss, float[] Gradient) result, double gradTolerance = 1e-4, int[]? probe = null)
    {
        var x = Reference.ToDouble(logits);
        Reference.AssertClose(Loss64(x, batch, time, classes, labels, lengths, blank), result.Loss, 1e-5, "loss");
        double F(double[] v) => Loss64(v, batch, time, classes, labels, lengths, blank).Sum();
        if (probe is null)
        {
            Reference.AssertNormClose(Reference.NumericGradient(F, x), result.Gradient, gradTolerance, "gradient");
            return;
        }
        var expected = new double[probe.Length];
        var actual = new float[probe.Length];
        for (int i = 0; i < probe.Length; i++)
        {
            double keep = x[probe[i]], h = 1e-5;
            x[probe[i]] = keep + h; double up = F(x);
            x[probe[i]] = keep - h; double down = F(x);
            x[probe[i]] = keep;
            expected[i] = (up - down) / (2 * h);
            actual[i] = result.Gradient[probe[i]];
        }
        Reference.AssertNormClose(expected, actual, gradTolerance, "gradient (probed)");
    }

    /// <summary>Random feasible labels (L ≤ T/2, so repeats never make them infeasible), sample 0 with a repeat.</summary>
    static (int[] Labels, int[] Lengths) RandomLabels(int batch, int time, int classes, int blank, int seed)
    {
        var rng = new Random(seed);
        var lengths = new int[batch];
        var labels = new List<int>();
        for (int b = 0; b < batch; b++)
        {
            lengths[b] = rng.Next(0, time / 2 + 1);
            for (int j = 0; j < lengths[b]; j++)
            {
                int k = (b == 0 && j == 1) ? labels[^1] : rng.Next(0, classes - 1);
                if (!(b == 0 && j == 1) && k >= blank) k++;
                labels.Add(k);
            }
        }
        return (labels.ToArray(), lengths);
    }

    // ---------------------------------------------------------------- tests

    public static TheoryData<string, int, int> LogSoftmaxCases() => new()
    {
        { TestDevices.Default, 1, 1 },
        { TestDevices.Default, 7, 37 },
        { TestDevices.Default, 33, 97 },
        { TestDevices.Default, 3, 6625 },
        { TestDevices.GpuLike, 1, 1 },
        { TestDevices.GpuLike, 7, 37 },
        { TestDevices.GpuLike, 2, 6625 },
    };

    [Theory]
    [MemberData(nameof(LogSoftmaxCases))]
    public void LogSoftmaxMatchesReference(string device, int rows, int classes)
    {
        var dev = TestDevices.Get(device);
        var x = Reference.Random(rows * classes, 11, -20f, 20f);
        using var tx = dev.Upload(x, x.Length);
        using var ty = Reference.NaNs(dev, x.Length);
        new Ctc(dev).LogSoftmax(tx.View, ty.View, rows, classes);
        Reference.AssertClose(LogSoftmax64(Reference.ToDouble(x), rows, classes), ty.ToHost(), 1e-5, "logp");
    }

    public static TheoryData<string, int, int, int> RandomCases() => new()
    {
        { TestDevices.Default, 1, 1, 2 },
        { TestDevices.Default, 3, 7, 5 },
        { TestDevices.Default, 5, 12, 9 },
        { TestDevices.GpuLike, 1, 1, 2 },
        { TestDevices.GpuLike, 5, 12, 9 },
        // The seed model's head: 37 classes, T = 25, batch 8.
        { TestDevices.Default, 8, 25, 37 },
        { TestDevices.GpuLike, 8, 25, 37 },
    };

    [Theory]
    [MemberData(nameof(RandomCases))]
    public void LossAndGradientMatchReference(string device, int batch, int time, int classes)
    {
        var logits = Reference.Random(batch * time * classes, batch + time, -3f, 3f);
        var (labels, lengths) = RandomLabels(batch, time, classes, 0, classes);
        var result = Run(device, logits, batch, time, classes, labels, lengths);
        CheckAgainstReference(logits, batch, time, classes, labels, lengths, 0, result, 1e-5);
    }

    public static TheoryData<string, int, int, int[], int> TinyCases()
    {
        var data = new TheoryData<string, int, int, int[], int>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 3, 3, [1, 2], 0);
            data.Add(device, 3, 4, [1, 1], 0);
            data.Add(device, 4, 5, [1, 2, 1], 0);
            data.Add(device, 4, 5, [3, 3, 2], 0);
            data.Add(device, 3, 2, [], 0);
            data.Add(device, 4, 4, [0, 2], 1);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(TinyCases))]
    public void LossMatchesBruteForceOverAllPaths(string device, int classes, int time, int[] label, int blank)
    {
        var logits = Reference.Random(time * classes, classes * 10 + time, -2f, 2f);
        var (loss, _) = Run(device, logits, 1, time, classes, label, [label.Length], blank);
        double expected = BruteForce64(Reference.ToDouble(logits), time, classes, label, blank);
        Assert.Equal(expected, Loss64(Reference.ToDouble(logits), 1, time, classes, label, [label.Length], blank)[0], 1e-12);
        Reference.AssertClose([expected], loss, 1e-6, "loss");
    }

    [Theory]
    [MemberData(nameof(DeviceNames))]
    public void GradientScaleGivesTheScaledGradientBitForBit(string device)
    {
        const int batch = 7, time = 12, classes = 9;
        const float scale = 1f / batch;
        var logits = Reference.Random(batch * time * classes, 41, -3f, 3f);
        var (feasible, feasibleLengths) = RandomLabels(batch - 1, time, classes, 0, 42);
        // The last sample infeasible (more labels than steps): its zero gradient stays zero.
        int[] labels = [.. feasible, .. Enumerable.Range(1, time + 1).Select(j => 1 + j % (classes - 1))];
        int[] lengths = [.. feasibleLengths, time + 1];
        var plain = Run(device, logits, batch, time, classes, labels, lengths, zeroInfinity: true);
        var scaled = Run(device, logits, batch, time, classes, labels, lengths, zeroInfinity: true, gradientScale: scale);
        Assert.Equal(plain.Loss, scaled.Loss);
        Assert.Equal(Array.ConvertAll(plain.Gradient, g => g * scale), scaled.Gradient);
    }

    static readonly float[] WarpCtcActivations = [0.1f, 0.6f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.6f, 0.1f, 0.1f];

    [Theory]
    [MemberData(nameof(DeviceNames))]
    public void MatchesWarpCtcSmallTest(string device)
    {
        var result = Run(device, WarpCtcActivations, 1, 2, 5, [1, 2], [2]);
        Assert.Equal(2.462858392, result.Loss[0], 1e-6);
        CheckAgainstReference(WarpCtcActivations, 1, 2, 5, [1, 2], [2], 0, result, 1e-6);
    }

    public static TheoryData<string> DeviceNames() => TestDevices.Names;

    [Fact]
    public void OnHostMatchesWarpCtcSmallTest()
    {
        var result = CtcOnHost.Compute(WarpCtcActivations, 1, 2, 5, [1, 2], [2]);
        Assert.Equal(2.462858392, result.Loss[0], 1e-6);
        CheckAgainstReference(WarpCtcActivations, 1, 2, 5, [1, 2], [2], 0, (result.Loss, result.Gradient), 1e-6);
    }

    public static TheoryData<string, bool> InfeasibleCases()
    {
        var data = new TheoryData<string, bool>();
        foreach (var device in TestDevices.Names) { data.Add(device, false); data.Add(device, true); }
        return data;
    }

    [Theory]
    [MemberData(nameof(InfeasibleCases))]
    public void InfeasibleLabelsGiveInfinityOrZero(string device, bool zeroInfinity)
    {
        // T = 2: sample 0 has L = 3 > T, sample 1 "1 1" needs 3 steps, sample 2 "1 2" is feasible.
        const int batch = 3, time = 2, classes = 4;
        var logits = Reference.Random(batch * time * classes, 5);
        int[] labels = [1, 2, 3, 1, 1, 1, 2], lengths = [3, 2, 2];
        var (loss, grad) = Run(device, logits, batch, time, classes, labels, lengths, zeroInfinity: zeroInfinity);
        float bad = zeroInfinity ? 0f : float.PositiveInfinity;
        Assert.Equal(bad, loss[0]);
        Assert.Equal(bad, loss[1]);
        Assert.All(grad[..(2 * time * classes)], g => Assert.Equal(0f, g));
        // The feasible sample is untouched by its neighbours.
        var only = Run(device, logits[(2 * time * classes)..], 1, time, classes, [1, 2], [2]);
        Assert.Equal(only.Loss[0], loss[2]);
        Assert.Equal(only.Gradient, grad[(2 * time * classes)..]);
        Assert.True(double.IsPositiveInfinity(Loss64(Reference.ToDouble(logits), batch, time, classes, labels, lengths, 0)[1]));
    }

    public static TheoryData<string, bool> ExtremeCases()
    {
        var data = new TheoryData<string, bool>();
        foreach (var device in TestDevices.Names) { data.Add(device, false); data.Add(device, true); }
        return data;
    }

    [Theory]
    [MemberData(nameof(ExtremeCases))]
    public void ExtremeLogitsStayFinite(string device, bool signsOnly)
    {
        const int batch = 2, time = 6, classes = 5;
        var logits = Reference.Random(batch * time * classes, 21, -100f, 100f);
        if (signsOnly) logits = Array.ConvertAll(logits, v => v < 0 ? -100f : 100f);
        int[] labels = [1, 2, 2, 3, 4], lengths = [3, 2];
        var result = Run(device, logits, batch, time, classes, labels, lengths);
        Assert.All(result.Loss, v => Assert.True(float.IsFinite(v), $"loss {v}"));
        Assert.All(result.Gradient, v => Assert.True(float.IsFinite(v), $"gradient {v}"));
        CheckAgainstReference(logits, batch, time, classes, labels, lengths, 0, result, 1e-4);
    }

    [Theory]
    [MemberData(nameof(DeviceNames))]
    public void EmptyLabelCostsTheBlankAtEveryStep(string device)
    {
        const int time = 4, classes = 3;
        var logits = Reference.Random(2 * time * classes, 8);
        int[] labels = [2], lengths = [0, 1];
        var result = Run(device, logits, 2, time, classes, labels, lengths);
        var logp = LogSoftmax64(Reference.ToDouble(logits), 2 * time, classes);
        double expected = 0;
        for (int t = 0; t < time; t++) expected -= logp[t * classes];
        Reference.AssertClose([expected], result.Loss[..1], 1e-6, "loss of the empty label");
        CheckAgainstReference(logits, 2, time, classes, labels, lengths, 0, result, 1e-5);
    }

    [Theory]
    [MemberData(nameof(DeviceNames))]
    public void ChineseDictionarySizeMatchesReference(string device)
    {
        const int classes = 6625;
        int batch = device == TestDevices.GpuLike ? 1 : 2, time = device == TestDevices.GpuLike ? 3 : 4;
        var logits = Reference.Random(batch * time * classes, 31, -5f, 5f);
        int[] labels = batch == 1 ? [6624] : [6624, 17, 17, 3000], lengths = batch == 1 ? [1] : [1, 3];
        var result = Run(device, logits, batch, time, classes, labels, lengths);
        // Probe every row's blank and label classes plus a few others: finite differences over all 50 000
        // logits of a 6 625-class reference would take minutes.
        var probe = new List<int>();
        var rng = new Random(4);
        for (int r = 0; r < batch * time; r++)
        {
            foreach (int k in labels.Append(0).Distinct()) probe.Add(r * classes + k);
            for (int i = 0; i < 4; i++) probe.Add(r * classes + rng.Next(classes));
        }
        CheckAgainstReference(logits, batch, time, classes, labels, lengths, 0, result, 1e-4, probe.Distinct().ToArray());
    }

    [Theory]
    [MemberData(nameof(DeviceNames))]
    public void BlankNeedNotBeZero(string device)
    {
        const int batch = 3, time = 6, classes = 6;
        foreach (int blank in new[] { classes - 1, 2 })
        {
            var logits = Reference.Random(batch * time * classes, 40 + blank, -2f, 2f);
            var (labels, lengths) = RandomLabels(batch, time, classes, blank, blank);
            Assert.DoesNotContain(blank, labels);
            var result = Run(device, logits, batch, time, classes, labels, lengths, blank);
            CheckAgainstReference(logits, batch, time, classes, labels, lengths, blank, result, 1e-5);
        }
    }

    [Theory]
    [MemberData(nameof(DeviceNames))]
    public void RepeatedRunsAreBitIdenticalAndGradientMayOverwriteLogits(string device)
    {
        var dev = TestDevices.Get(device);
        const int batch = 2, time = 5, classes = 7;
        var logits = Reference.Random(batch * time * classes, 50, -4f, 4f);
        int[] labels = [1, 6, 6, 2], lengths = [3, 1];
        var first = Run(device, logits, batch, time, classes, labels, lengths);
        var second = Run(device, logits, batch, time, classes, labels, lengths);
        Assert.Equal(first.Loss, second.Loss);
        Assert.Equal(first.Gradient, second.Gradient);

        var ctc = new Ctc(dev);
        using var ws = ctc.CreateWorkspace(batch, time, classes);
        using var inPlace = dev.Upload(logits, logits.Length);
        using var tLabels = dev.Upload(labels, labels.Length);
        using var tLengths = dev.Upload(lengths, batch);
        using var tLoss = Reference.NaNs(dev, batch);
        ctc.LossAndGradient(inPlace.View, tLabels.View, tLengths.View, tLoss.View, inPlace.View, ws);
        Assert.Equal(first.Loss, tLoss.ToHost());
        Assert.Equal(first.Gradient, inPlace.ToHost());
        Reference.AssertClose(LogSoftmax64(Reference.ToDouble(logits), batch * time, classes), ws.LogProbs.ToHost(), 1e-5, "workspace logp");
    }

    [Fact]
    public void InvalidLabelsOnTheDeviceGiveNaNLossAndZeroGradient()
    {
        // Offsets 0, 2, 3, 5, 4: sample 0 uses the blank as a label, 1 a class out of range, 2 {2, 3} is fine,
        // 3 has a negative length, 4 runs past the end of the label array. zeroInfinity must not hide them.
        const int batch = 5, time = 4, classes = 4;
        var logits = Reference.Random(batch * time * classes, 60);
        int[] labels = [0, 1, 9, 2, 3];
        int[] lengths = [2, 1, 2, -1, 3];
        var (loss, grad) = Run(TestDevices.Default, logits, batch, time, classes, labels, lengths, zeroInfinity: true);
        foreach (int b in new[] { 0, 1, 3, 4 })
        {
            Assert.True(float.IsNaN(loss[b]), $"loss[{b}] = {loss[b]}");
            Assert.All(grad[(b * time * classes)..((b + 1) * time * classes)], g => Assert.Equal(0f, g));
        }
        int n = time * classes;
        CheckAgainstReference(logits[(2 * n)..(3 * n)], 1, time, classes, [2, 3], [2], 0, (loss[2..3], grad[(2 * n)..(3 * n)]), 1e-5);
    }

    [Fact]
    public void OnHostRejectsBadArguments()
    {
        var logits = new float[2 * 3 * 4];
        void Throws(string fragment, Action call)
        {
            var e = Assert.Throws<ArgumentException>(call);
            Assert.Contains(fragment, e.Message);
        }
        Throws("logits length", () => CtcOnHost.Compute(new float[5], 2, 3, 4, [1], [1, 0]));
        Throws("labelLengths has", () => CtcOnHost.Compute(logits, 2, 3, 4, [1], [1]));
        Throws("sum to", () => CtcOnHost.Compute(logits, 2, 3, 4, [1, 2], [1, 0]));
        Throws("negative", () => CtcOnHost.Compute(logits, 2, 3, 4, [], [1, -1]));
        Throws("outside [0, 4)", () => CtcOnHost.Compute(logits, 2, 3, 4, [4], [1, 0]));
        Throws("outside [0, 4)", () => CtcOnHost.Compute(logits, 2, 3, 4, [-1], [1, 0]));
        Throws("is the blank", () => CtcOnHost.Compute(logits, 2, 3, 4, [2], [0, 1], blank: 2));
        Throws("blank 4", () => CtcOnHost.Compute(logits, 2, 3, 4, [1], [1, 0], blank: 4));
        Throws("blank -1", () => CtcOnHost.Compute(logits, 2, 3, 4, [1], [1, 0], blank: -1));
        Throws("batch must be positive", () => CtcOnHost.Compute([], 0, 3, 4, [], []));
        Throws("time must be positive", () => CtcOnHost.Compute([], 2, 0, 4, [], [0, 0]));
        Throws("classes must be positive", () => CtcOnHost.Compute([], 2, 3, 0, [], [0, 0]));
    }

    [Fact]
    public void DeviceApiRejectsBadShapes()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var ctc = new Ctc(dev);
        Assert.Throws<ArgumentException>(() => ctc.CreateWorkspace(0, 3, 4));
        using var ws = ctc.CreateWorkspace(2, 3, 4);
        using var logits = dev.Allocate(24);
        using var shortBuffer = dev.Allocate(23);
        using var labels = dev.Allocate<int>(2);
        using var lengths = dev.Allocate<int>(2);
        using var loss = dev.Allocate(2);
        Assert.Throws<ArgumentException>(() => ctc.LossAndGradient(shortBuffer.View, labels.View, lengths.View, loss.View, logits.View, ws));
        Assert.Throws<ArgumentException>(() => ctc.LossAndGradient(logits.View, labels.View, lengths.View, loss.View, shortBuffer.View, ws));
        Assert.Throws<ArgumentException>(() => ctc.LossAndGradient(logits.View, labels.View, labels.View.SubView(0, 1), loss.View, logits.View, ws));
        Assert.Throws<ArgumentException>(() => ctc.LossAndGradient(logits.View, labels.View, lengths.View, loss.View.SubView(0, 1), logits.View, ws));
        Assert.Throws<ArgumentException>(() => ctc.LossAndGradient(logits.View, labels.View, lengths.View, loss.View, logits.View, ws, blank: 4));
        Assert.Throws<ArgumentException>(() => ctc.LogSoftmax(logits.View, shortBuffer.View, 6, 4));
        Assert.Throws<ArgumentException>(() => ctc.LogSoftmax(shortBuffer.View, shortBuffer.View, 6, 4));
    }
}
