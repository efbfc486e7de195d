using Crnn.Kernels;
using Xunit;

namespace Crnn.Engine.Tests;

public class ModelConfigTests
{
    /// <summary>MODEL.md's table for the seed model: kernel, expand, out, SE, activation, stride h.</summary>
    static readonly (int K, int Exp, int Out, bool Se, Activation Act, int Sh)[] Table =
    [
        (3, 8, 8, false, Activation.Relu, 1), (3, 32, 16, false, Activation.Relu, 2),
        (3, 40, 16, false, Activation.Relu, 1), (5, 40, 24, true, Activation.Relu, 2),
        (5, 64, 24, true, Activation.Relu, 1), (5, 64, 24, true, Activation.Relu, 1),
        (3, 120, 40, false, Activation.HardSwish, 1), (3, 104, 40, false, Activation.HardSwish, 1),
        (3, 96, 40, false, Activation.HardSwish, 1), (3, 96, 40, false, Activation.HardSwish, 1),
        (3, 240, 56, true, Activation.HardSwish, 1), (3, 336, 56, true, Activation.HardSwish, 1),
        (5, 336, 80, true, Activation.HardSwish, 2), (5, 480, 80, true, Activation.HardSwish, 1),
        (5, 480, 80, true, Activation.HardSwish, 1),
    ];

    [Fact]
    public void SeedModelMatchesModelMdTable()
    {
        var config = new ModelConfig();
        Assert.Equal(8, config.StemChannels);
        Assert.Equal(480, config.HeadChannels);
        Assert.Equal((16, 50), config.StemSize);
        Assert.Equal(25, config.TimeSteps);
        var units = config.Units;
        Assert.Equal(Table.Length, units.Count);
        for (int i = 0; i < Table.Length; i++)
        {
            var (k, exp, outCh, se, act, sh) = Table[i];
            var u = units[i];
            Assert.Equal((k, exp, outCh, se, act, sh, 1), (u.Kernel, u.Expand, u.Out, u.SqueezeExcite, u.Act, u.StrideH, u.StrideW));
        }
        // MODEL.md's rule (stride 1 and in == out, as PaddleOCR's ResidualUnit.if_shortcut) also holds for
        // unit 0 (8 → 8, stride 1), which MODEL.md's list of shortcut units leaves out; the rule wins.
        Assert.Equal([0, 2, 4, 5, 7, 8, 9, 11, 13, 14], Enumerable.Range(0, units.Count).Where(i => units[i].HasShortcut));
    }

    [Fact]
    public void SeedModelHasTheReferenceParameterCount()
    {
        // MODEL.md's "about 1.45 M for C = 37"; 1,451,787 exactly is the PyTorch peer's count of the same model
        // (bench/peers/pytorch_crnn.py, checked with torch 1.13).
        Assert.Equal(1_451_787, new ModelConfig().ParameterCount);
    }

    [Theory]
    [InlineData(8.0, 8)]
    [InlineData(36.0, 40)]
    [InlineData(100.0, 104)]
    [InlineData(92.0, 96)]
    [InlineData(12.0, 16)]
    [InlineData(4.0, 8)]
    public void MakeDivisibleFollowsPaddle(double v, int expected) => Assert.Equal(expected, ModelConfig.MakeDivisible(v));

    [Fact]
    public void WrongInputHeightIsAClearError()
    {
        var e = Assert.Throws<InvalidOperationException>(() => new ModelConfig(Height: 48).TimeSteps);
        Assert.Contains("height 48", e.Message);
    }
}
