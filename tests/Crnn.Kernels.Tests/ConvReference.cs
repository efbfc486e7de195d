using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>
/// float64 references for the convolution tests, written as plain loops independent of the kernels: one
/// grouped convolution covers dense (groups 1), depthwise (groups = channels) and 1×1 (kernel 1) layers.
/// </summary>
public static class ConvReference
{
    /// <summary>y[b, o, p, q] = bias[o] + Σ x[b, g·cin + c, p·sh − pad + i, q·sw − pad + j]·w[o, c, i, j]
    /// over the group g of o (cin = inChannels/groups input channels each), zero outside the input.</summary>
    public static double[] Forward(double[] x, double[] w, double[]? bias, int batch, int inChannels, int height, int width,
        int outChannels, int groups, int kernel, int strideH, int strideW, int pad)
    {
        int outH = (height + 2 * pad - kernel) / strideH + 1, outW = (width + 2 * pad - kernel) / strideW + 1;
        int cinPerGroup = inChannels / groups, coutPerGroup = outChannels / groups;
        var y = new double[batch * outChannels * outH * outW];
        for (int b = 0; b < batch; b++)
            for (int o = 0; o < outChannels; o++)
                for (int p = 0; p < outH; p++)
                    for (int q = 0; q < outW; q++)
                    {
                        double acc = bias?[o] ?? 0;
                        for (int c = 0; c < cinPerGroup; c++)
                        {
                            int channel = o / coutPerGroup * cinPerGroup + c;
                            for (int i = 0; i < kernel; i++)
                                for (int j = 0; j < kernel; j++)
                                {
                                    int r = p * strideH - pad + i, col = q * strideW - pad + j;
                                    if (r < 0 || r >= height || col < 0 || col >= width) continue;
                                    acc += x[((b * inChannels + channel) * height + r) * width + col] * w[((o * cinPerGroup + c) * kernel + i) * kernel + j];
                                }
                        }
                        y[((b * outChannels + o) * outH + p) * outW + q] = acc;
                    }
        return y;
    }

    /// <summary>
    /// Central finite differences of f at up to <paramref name="samples"/> fixed-seed positions of x (all of
    /// them when x is small), with the kernel's gradient at the same positions: big shapes stay fast. Every
    /// element of the kernel's gradient must still be written (no NaN left from the pre-filled buffer).
    /// </summary>
    public static (double[] Numeric, float[] Kernel) SampledGradient(Func<double[], double> f, double[] x, float[] kernel,
        int samples = 200, double h = 1e-3)
    {
        int unwritten = Array.FindIndex(kernel, float.IsNaN);
        Assert.True(unwritten < 0, $"gradient element {unwritten} was not written");
        int[] picks = x.Length <= samples
            ? Enumerable.Range(0, x.Length).ToArray()
            : new Random(x.Length).GetItems(Enumerable.Range(0, x.Length).ToArray(), samples).Append(0).Append(x.Length - 1).ToArray();
        var numeric = new double[picks.Length];
        var xp = (double[])x.Clone();
        for (int n = 0; n < picks.Length; n++)
        {
            int i = picks[n];
            double keep = xp[i];
            xp[i] = keep + h; double up = f(xp);
            xp[i] = keep - h; double down = f(xp);
            xp[i] = keep;
            numeric[n] = (up - down) / (2 * h);
        }
        return (numeric, picks.Select(i => kernel[i]).ToArray());
    }
}
