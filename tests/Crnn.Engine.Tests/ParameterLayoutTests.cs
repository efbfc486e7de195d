using Xunit;

namespace Crnn.Engine.Tests;

public class ParameterLayoutTests
{
    [Fact]
    public void CoversEveryParameterOnceAndContiguously()
    {
        var config = new ModelConfig();
        var layout = new ParameterLayout(config);
        Assert.Equal(config.ParameterCount, layout.ParameterCount);
        int next = 0;
        foreach (var p in layout.Parameters)
        {
            Assert.Equal(next, p.Offset);
            next += p.Length;
        }
        Assert.Equal(2 * (1 + 3 * 15 + 1), layout.Buffers.Count); // running mean and variance of every BatchNorm
        Assert.Equal([8, 3, 3, 3], layout["backbone.conv1.weight"].Shape);
        Assert.Equal([336, 1, 5, 5], layout["backbone.units.12.depthwise.weight"].Shape);
        Assert.Equal([84, 336, 1, 1], layout["backbone.units.12.se.conv1.weight"].Shape);
        Assert.Equal([384, 480], layout["neck.lstm.0.forward.weight_ih"].Shape);
        Assert.Equal([384, 192], layout["neck.lstm.1.reverse.weight_ih"].Shape);
        Assert.Equal([37, 192], layout["head.fc.weight"].Shape);
        Assert.Throws<KeyNotFoundException>(() => layout["nope"]);
    }

    [Fact]
    public void InitializationFollowsModelMd()
    {
        var layout = new ParameterLayout(new ModelConfig());
        var (p, b) = layout.Initialize(seed: 7);
        var expand = layout["backbone.units.11.expand.weight"]; // fan_in 56
        var values = p.AsSpan(expand.Offset, expand.Length).ToArray();
        double mean = values.Average(v => (double)v);
        double std = Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(mean, -0.01, 0.01);
        Assert.InRange(std, 0.95 * Math.Sqrt(2.0 / 56), 1.05 * Math.Sqrt(2.0 / 56));
        var fc = layout["head.fc.weight"];
        Assert.All(p.AsSpan(fc.Offset, fc.Length).ToArray(), v => Assert.InRange(v, -1 / Math.Sqrt(192), 1 / Math.Sqrt(192)));
        Assert.All(p.AsSpan(layout["backbone.conv2.bn.weight"].Offset, 480).ToArray(), v => Assert.Equal(1f, v));
        Assert.All(b.AsSpan(layout["backbone.conv2.bn.running_var"].Offset, 480).ToArray(), v => Assert.Equal(1f, v));
        Assert.Equal(p, layout.Initialize(seed: 7).Parameters);
        Assert.NotEqual(p, layout.Initialize(seed: 8).Parameters);
    }
}
