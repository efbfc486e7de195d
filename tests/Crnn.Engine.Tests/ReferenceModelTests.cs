using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.Engine.Tests;

/// <summary>Proves the float64 reference model right on its own: CTC against warp-ctc's published value, every
/// parameter tensor's gradient against central finite differences, BatchNorm modes, shapes of the seed model.</summary>
public class ReferenceModelTests(ITestOutputHelper output)
{
    /// <summary>Small enough for hundreds of forwards: 8–96 channels, T = 4 (width 16), hidden 4, 5 classes.</summary>
    static readonly ModelConfig Small = new(Scale: 0.1, Classes: 5, Hidden: 4, Width: 16);

    static readonly int[][] SmallLabels = [[1, 2], [3, 3]]; // the repeat needs a blank between: 3 of the 4 steps

    /// <summary>Parameters and buffers from the layout's seeded init, images uniform in [−1, 1].</summary>
    static (double[] Parameters, double[] Buffers, double[] Images) Inputs(ModelConfig config, ParameterLayout layout, int batch, int seed)
    {
        var (p, b) = layout.Initialize(seed);
        var rng = new Random(seed + 1);
        var images = new double[batch * 3 * config.Height * config.Width];
        for (int i = 0; i < images.Length; i++) images[i] = 2 * rng.NextDouble() - 1;
        return (Array.ConvertAll(p, v => (double)v), Array.ConvertAll(b, v => (double)v), images);
    }

    [Fact]
    public void ReferenceCtcMatchesWarpCtcPublishedLoss()
    {
        double[] logits = [0.1, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6, 0.1, 0.1];
        var (loss, _) = ReferenceModel.CtcLoss(logits, steps: 2, classes: 5, label: [1, 2]);
        Assert.Equal(2.462858392, loss, 1e-8);
    }

    [Fact]
    public void ReferenceCtcGradientMatchesFiniteDifferences()
    {
        const int T = 6, C = 5;
        var rng = new Random(3);
        var logits = Enumerable.Range(0, T * C).Select(_ => 3 * rng.NextDouble() - 1.5).ToArray();
        foreach (var label in new[] { new[] { 1, 2, 2 }, [4], [], [2, 1, 2, 3] })
        {
            var (_, gradient) = ReferenceModel.CtcLoss(logits, T, C, label);
            for (int i = 0; i < logits.Length; i++)
            {
                double numeric = CentralDifference(logits, i, 1e-6, x => ReferenceModel.CtcLoss(x, T, C, label).Loss);
                Assert.True(Math.Abs(numeric - gradient[i]) < 1e-8, $"label [{string.Join(",", label)}] logit {i}: {gradient[i]} vs {numeric}");
            }
        }
    }

    [Fact]
    public void ReferenceCtcInfeasibleLabelGivesInfinityAndNoGradient()
    {
        var logits = new double[2 * 5];
        var (loss, gradient) = ReferenceModel.CtcLoss(logits, steps: 2, classes: 5, label: [3, 3]); // needs 3 steps
        Assert.Equal(double.PositiveInfinity, loss);
        Assert.All(gradient, g => Assert.Equal(0.0, g));
    }

    [Fact]
    public void ReferenceActivationDerivativesFollowTheKinkConventions()
    {
        Assert.Equal(0.0, ReferenceModel.ReluGrad(0));
        Assert.Equal(0.0, ReferenceModel.HardSwishGrad(-3.0001));
        Assert.Equal(-0.5, ReferenceModel.HardSwishGrad(-3));
        Assert.Equal(1.5, ReferenceModel.HardSwishGrad(3));
        Assert.Equal(1.0, ReferenceModel.HardSwishGrad(3.0001));
        Assert.Equal(0.0, ReferenceModel.HardSigmoidGrad(2.5));
        Assert.Equal(0.0, ReferenceModel.HardSigmoidGrad(-2.5));
        Assert.Equal(0.2, ReferenceModel.HardSigmoidGrad(2.4999));
        Assert.Equal(2.0 / 3, ReferenceModel.HardSwish(1), 15);
        Assert.Equal(0.7, ReferenceModel.HardSigmoid(1), 15);
    }

    /// <summary>
    /// Central differences with step 1e-6 (larger steps cross ReLU/hardswish kinks somewhere in the net and
    /// err by up to 1e-2): per tensor its largest-gradient entry and random ones (2 in training, 1 in
    /// evaluation). Relative error below 1e-5, judged against 3e-4 for smaller gradients: there the
    /// difference quotient's own roundoff (about 1e-16·loss / 1e-6 ≈ 6e-10 here) is what remains.
    /// </summary>
    [Theory]
    [InlineData(true, 2)]
    [InlineData(false, 1)]
    public void ReferenceGradientsMatchFiniteDifferencesForEveryTensor(bool training, int randomEntries)
    {
        var layout = new ParameterLayout(Small);
        var model = new ReferenceModel(Small, layout);
        var (parameters, buffers, images) = Inputs(Small, layout, batch: 2, seed: 11);
        // Evaluation runs on running statistics that differ from the batch's: those of one training step.
        if (!training) buffers = model.Forward(parameters, buffers, images, 2, SmallLabels, training: true).Buffers;

        var analytic = model.Run(parameters, buffers, images, 2, SmallLabels, training).Gradients;
        double Loss(double[] p) => model.Forward(p, buffers, images, 2, SmallLabels, training).Loss;

        var rng = new Random(5);
        double worst = 0;
        string worstAt = "";
        int checkedEntries = 0;
        foreach (var spec in layout.Parameters)
        {
            int largest = Enumerable.Range(0, spec.Length).MaxBy(i => Math.Abs(analytic[spec.Offset + i]));
            var entries = Enumerable.Range(0, randomEntries).Select(_ => rng.Next(spec.Length)).Prepend(largest).Distinct();
            foreach (int i in entries)
            {
                int at = spec.Offset + i;
                double numeric = CentralDifference(parameters, at, 1e-6, Loss);
                double error = Math.Abs(analytic[at] - numeric) / Math.Max(Math.Max(Math.Abs(analytic[at]), Math.Abs(numeric)), 3e-4);
                if (error > worst) (worst, worstAt) = (error, $"{spec.Name}[{i}]: analytic {analytic[at]:E6}, numeric {numeric:E6}");
                Assert.True(error < 1e-5, $"{spec.Name}[{i}]: analytic {analytic[at]:E10}, numeric {numeric:E10}");
                checkedEntries++;
            }
        }
        output.WriteLine($"{(training ? "training" : "evaluation")}: {checkedEntries} entries of {layout.Parameters.Count} tensors, " +
                         $"worst error {worst:E2} at {worstAt}");
    }

    /// <summary>
    /// In training a unit's linear.bn.bias shifts whole channels, and every consumer of the unit's output is a
    /// 1×1 convolution followed by a BatchNorm that subtracts the batch mean again: its gradient is exactly 0
    /// (roundoff only). Comparisons with the engine must not divide by these tensors' norms.
    /// </summary>
    [Fact]
    public void ReferenceLinearBnBiasHasNoGradientInTrainingOnly()
    {
        var layout = new ParameterLayout(Small);
        var model = new ReferenceModel(Small, layout);
        var (parameters, buffers, images) = Inputs(Small, layout, batch: 2, seed: 11);
        double LargestBiasGradient(bool training)
        {
            var g = model.Run(parameters, buffers, images, 2, SmallLabels, training).Gradients;
            return layout.Parameters.Where(p => p.Name.EndsWith(".linear.bn.bias"))
                .Max(p => g.AsSpan(p.Offset, p.Length).ToArray().Max(Math.Abs));
        }
        Assert.True(LargestBiasGradient(training: true) < 1e-12);
        Assert.True(LargestBiasGradient(training: false) > 1e-4);
    }

    [Fact]
    public void ReferenceEvaluationOnTheBatchStatisticsReproducesTraining()
    {
        var layout = new ParameterLayout(Small);
        var model = new ReferenceModel(Small, layout);
        var (parameters, buffers, images) = Inputs(Small, layout, batch: 2, seed: 12);
        var train = model.Forward(parameters, buffers, images, 2, SmallLabels, training: true);

        // running' = 0.9·running + 0.1·batch gives back the batch mean and biased variance; evaluation on
        // them must then normalize exactly as training did.
        var batchStats = train.Buffers.Select((v, i) => (v - ReferenceModel.BnMomentum * buffers[i]) / (1 - ReferenceModel.BnMomentum)).ToArray();
        var eval = model.Forward(parameters, batchStats, images, 2, SmallLabels, training: false);
        for (int i = 0; i < train.Logits.Length; i++) Assert.Equal(train.Logits[i], eval.Logits[i], 1e-9);
        Assert.Equal(batchStats, eval.Buffers);

        var evalOnInit = model.Forward(parameters, buffers, images, 2, SmallLabels, training: false);
        Assert.True(Math.Abs(train.Logits[0] - evalOnInit.Logits[0]) > 1e-6, "evaluation must use the running statistics");
        Assert.NotEqual(buffers, train.Buffers);
    }

    [Fact]
    public void ReferenceSeedModelShapesAndTiming()
    {
        var config = new ModelConfig();
        var layout = new ParameterLayout(config);
        var model = new ReferenceModel(config, layout);
        var (parameters, buffers, images) = Inputs(config, layout, batch: 2, seed: 1);
        int[][] labels = [[1, 2, 3], [10, 20, 30, 36]];

        var clock = Stopwatch.StartNew();
        var result = model.Run(parameters, buffers, images, 2, labels, training: true);
        clock.Stop();

        Assert.Equal(25, model.TimeSteps);
        Assert.Equal(2 * 25 * 37, result.Logits.Length);
        Assert.Equal(2, result.Losses.Length);
        Assert.All(result.Losses, l => Assert.True(double.IsFinite(l) && l > 0));
        Assert.Equal(layout.ParameterCount, result.Gradients.Length);
        Assert.Equal(layout.BufferCount, result.Buffers.Length);
        Assert.All(result.Gradients, g => Assert.True(double.IsFinite(g)));
        output.WriteLine($"seed model, batch 2: forward + backward {clock.Elapsed.TotalMilliseconds:F0} ms, loss {result.Loss:F6}");
    }

    static double CentralDifference(double[] x, int index, double eps, Func<double[], double> f)
    {
        var copy = (double[])x.Clone();
        copy[index] = x[index] + eps;
        double plus = f(copy);
        copy[index] = x[index] - eps;
        double minus = f(copy);
        return (plus - minus) / (2 * eps);
    }
}
