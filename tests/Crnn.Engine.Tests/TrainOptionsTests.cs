using Crnn.Engine.Training;
using Xunit;

namespace Crnn.Engine.Tests;

public class TrainOptionsTests
{
    /// <summary>Warm-up 2, then constant, then a cosine to zero over the last half (steps 6–10); values by hand:
    /// step 6 is 1/5 into the decay, 0.5·(1 + cos(0.2π)) = 0.904508…</summary>
    [Theory]
    [InlineData(0.5f, 1, 0.5)]
    [InlineData(0.5f, 2, 1.0)]
    [InlineData(0.5f, 5, 1.0)]
    [InlineData(0.5f, 6, 0.9045084971874737)]
    [InlineData(0.5f, 8, 0.3454915028125263)]
    [InlineData(0.5f, 10, 0.0)]
    [InlineData(0f, 10, 1.0)]
    [InlineData(1f, 6, 0.5)] // decay over everything after the warm-up: 4 of 8 steps
    public void LearningRateFollowsWarmupHoldAndCosineDecay(float decay, long step, double expected)
    {
        var options = new TrainOptions { Steps = 10, WarmupSteps = 2, LearningRate = 1, DecayFraction = decay };
        Assert.Equal(expected, options.LearningRateAt(step), tolerance: 1e-6); // float32 result
    }

    [Theory]
    [InlineData(-0.1f)]
    [InlineData(1.5f)]
    [InlineData(float.NaN)]
    public void DecayOutsideZeroToOneIsRejected(float decay) =>
        Assert.Contains("--decay must be between 0 and 1", Assert.Throws<ArgumentException>(() => new TrainOptions { DecayFraction = decay }.Validate()).Message);
}
