using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>Helpers for checking kernels against float64 references written in the tests.</summary>
public static class Reference
{
    /// <summary>Fixed-seed uniform values in [lo, hi).</summary>
    public static float[] Random(int count, int seed, float lo = -1f, float hi = 1f)
    {
        var rng = new Random(seed);
        var data = new float[count];
        for (int i = 0; i < count; i++) data[i] = lo + (hi - lo) * (float)rng.NextDouble();
        return data;
    }

    public static double[] ToDouble(float[] x) => Array.ConvertAll(x, v => (double)v);

    /// <summary>A device tensor pre-filled with NaN, so an element the kernel forgets to write fails the test.</summary>
    public static Tensor<float> NaNs(Device device, params int[] shape)
    {
        var t = device.Allocate(shape);
        t.Fill(float.NaN);
        return t;
    }

    /// <summary>
    /// Element-wise |actual − expected| ≤ rel·(|expected| + rms(expected)): relative, with a floor at the
    /// data's own scale so float32 rounding on near-zero results of long sums does not count as an error.
    /// </summary>
    public static void AssertClose(double[] expected, float[] actual, double rel, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        double rms = expected.Length == 0 ? 0 : Math.Sqrt(expected.Sum(v => v * v) / expected.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            if (!(err <= rel * (Math.Abs(expected[i]) + rms)))
                Assert.Fail($"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R} (error {err:E2}, tolerance {rel:E0} relative, rms {rms:E2})");
        }
    }

    /// <summary>‖actual − expected‖ ≤ rel·‖expected‖ (gradient checks, where single elements may be tiny).</summary>
    public static void AssertNormClose(double[] expected, float[] actual, double rel, string what = "")
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]), $"{what}[{i}] is NaN");
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        Assert.True(Math.Sqrt(diff) <= rel * Math.Sqrt(norm) + 1e-12,
            $"{what}: relative error {Math.Sqrt(diff) / Math.Sqrt(norm):E2} > {rel:E0} (norm {Math.Sqrt(norm):E3})");
    }

    /// <summary>
    /// Central finite differences of a float64 scalar function: the gradient a backward kernel must match.
    /// Tests use f(x) = Σ reference_forward(x)·r with fixed random r, so the matching upstream gradient is r.
    /// </summary>
    public static double[] NumericGradient(Func<double[], double> f, double[] x, double h = 1e-5)
    {
        var grad = new double[x.Length];
        var xp = (double[])x.Clone();
        for (int i = 0; i < x.Length; i++)
        {
            double keep = xp[i];
            xp[i] = keep + h; double up = f(xp);
            xp[i] = keep - h; double down = f(xp);
            xp[i] = keep;
            grad[i] = (up - down) / (2 * h);
        }
        return grad;
    }

    /// <summary>Σ y[i]·r[i].</summary>
    public static double Dot(double[] y, double[] r)
    {
        double s = 0;
        for (int i = 0; i < y.Length; i++) s += y[i] * r[i];
        return s;
    }
}
