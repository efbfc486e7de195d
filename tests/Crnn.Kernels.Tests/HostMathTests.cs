using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Crnn.Kernels;
using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>The host LSTM's vector sigmoid and tanh: against float64, and sixteen lanes against eight (the recurrence
/// runs sixteen where AVX-512 has them and eight for the rest of a row: they must give the same bits).</summary>
public class HostMathTests
{
    /// <summary>Inputs across both saturations and the clamp of exp's argument, dense near zero.</summary>
    static float[] Inputs()
    {
        var values = new List<float>();
        for (double m = 1e-6; m < 120; m *= 1.003) { values.Add((float)m); values.Add(-(float)m); }
        values.Add(0f);
        while (values.Count % 16 != 0) values.Add(1f);
        return [.. values];
    }

    [Fact]
    public void SigmoidAndTanhAreWithinAFewUlpOfOneOfFloat64()
    {
        var x = Inputs();
        double worstSigmoid = 0, worstTanh = 0;
        for (int i = 0; i < x.Length; i += 8)
        {
            var v = Vector256.Create(x, i);
            var s = HostMath.Sigmoid(v);
            var t = HostMath.Tanh(v);
            for (int j = 0; j < 8; j++)
            {
                double xi = x[i + j];
                worstSigmoid = Math.Max(worstSigmoid, Math.Abs(s[j] - 1 / (1 + Math.Exp(-xi))));
                worstTanh = Math.Max(worstTanh, Math.Abs(t[j] - Math.Tanh(xi)));
            }
        }
        // Absolute errors: values lie in [0, 1] and [−1, 1], where one float ulp is at most 6e-8 and 1.2e-7.
        Assert.True(worstSigmoid < 2e-7, $"sigmoid off by {worstSigmoid:E2}");
        Assert.True(worstTanh < 4e-7, $"tanh off by {worstTanh:E2}");
    }

    [Fact]
    public void SixteenLanesGiveTheBitsOfEight()
    {
        // Eight lanes fuse their multiply-adds where the CPU has FMA, as every AVX-512 CPU (the only ones that run sixteen) does.
        Assert.True(Fma.IsSupported, "this test compares the fused eight-lane path");
        var x = Inputs();
        for (int i = 0; i < x.Length; i += 16)
        {
            var v = Vector512.Create(x, i);
            var (lo, hi) = (Vector256.Create(x, i), Vector256.Create(x, i + 8));
            Assert.Equal(Vector512.Create(HostMath.Sigmoid(lo), HostMath.Sigmoid(hi)), HostMath.Sigmoid(v));
            Assert.Equal(Vector512.Create(HostMath.Tanh(lo), HostMath.Tanh(hi)), HostMath.Tanh(v));
            Assert.Equal(Vector512.Create(HostMath.Exp(lo), HostMath.Exp(hi)), HostMath.Exp(v));
        }
    }
}
