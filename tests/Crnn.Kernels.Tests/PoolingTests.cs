using Xunit;

namespace Crnn.Kernels.Tests;

public class PoolingTests
{
    /// <summary>float64 max pool, window = stride = k, trailing rows/columns dropped; first maximum wins.</summary>
    static (double[] Y, int[] Index) MaxPool(double[] x, int planes, int h, int w, int k)
    {
        int oh = h / k, ow = w / k;
        var y = new double[planes * oh * ow];
        var index = new int[y.Length];
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    int o = (p * oh + i) * ow + j, best = -1;
                    for (int a = 0; a < k; a++)
                        for (int b = 0; b < k; b++)
                        {
                            int q = (i * k + a) * w + j * k + b;
                            if (best < 0 || x[p * h * w + q] > x[p * h * w + best]) best = q;
                        }
                    y[o] = x[p * h * w + best];
                    index[o] = best;
                }
        return (y, index);
    }

    /// <summary>[batch, channels, H, W, kernel]: odd sizes, leftover rows/columns, k = 1, 2, 3, and the model's [.,480,2,50].</summary>
    public static TheoryData<string, int, int, int, int, int> MaxCases()
    {
        var data = new TheoryData<string, int, int, int, int, int>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 1, 7, 5, 97, 2);
            data.Add(device, 3, 33, 3, 7, 2);
            data.Add(device, 3, 1, 1, 97, 1);
            data.Add(device, 1, 7, 9, 97, 3);
            data.Add(device, 3, 1, 1, 1, 2); // empty output: dx is all zeros
            data.Add(device, 1, 3, 2, 50, 2);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(MaxCases))]
    public void MaxPoolMatchesReferenceAndFiniteDifferences(string device, int batch, int channels, int h, int w, int k)
    {
        var dev = TestDevices.Get(device);
        var pool = new Pooling(dev);
        var s = Pooling.MaxPoolShape(batch, channels, h, w, k);
        int planes = batch * channels;
        var x = Reference.Random(s.InputLength, 21, 1f, 5f);
        using var tx = dev.Upload(x, s.InputLength);
        using var ty = Reference.NaNs(dev, s.OutputLength);
        using var ti = dev.Allocate<int>(s.OutputLength);
        ti.Fill(-7);
        pool.MaxPoolForward(tx.View, ty.View, ti.View, s);
        var (y, index) = MaxPool(Reference.ToDouble(x), planes, h, w, k);
        Reference.AssertClose(y, ty.ToHost(), 0, "y");
        Assert.Equal(index, ti.ToHost());

        var r = Reference.Random(s.OutputLength, 22);
        using var tdy = dev.Upload(r, s.OutputLength);
        using var tdx = Reference.NaNs(dev, s.InputLength);
        pool.MaxPoolBackward(tdy.View, ti.View, tdx.View, s);
        var rd = Reference.ToDouble(r);
        var numeric = Reference.NumericGradient(xs => Reference.Dot(MaxPool(xs, planes, h, w, k).Y, rd), Reference.ToDouble(x));
        Reference.AssertNormClose(numeric, tdx.ToHost(), 1e-6, "dx");
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void MaxPoolTiesTakeTheFirstMaximum(string device)
    {
        var dev = TestDevices.Get(device);
        var s = Pooling.MaxPoolShape(1, 3, 4, 6, 2);
        // Values from {0, 1, 2}: most windows hold a repeated maximum.
        var x = Array.ConvertAll(Reference.Random(s.InputLength, 23, 0f, 3f), v => MathF.Floor(v));
        using var tx = dev.Upload(x, s.InputLength);
        using var ty = Reference.NaNs(dev, s.OutputLength);
        using var ti = dev.Allocate<int>(s.OutputLength);
        new Pooling(dev).MaxPoolForward(tx.View, ty.View, ti.View, s);
        var (_, index) = MaxPool(Reference.ToDouble(x), 3, 4, 6, 2);
        Assert.Equal(index, ti.ToHost());
    }

    /// <summary>The host's fused pool to a sequence: float64 max pool, then [B, C, W/k] read as [B, W/k, C]. Widths with
    /// and without a tail after the eight-wide loop, channels in groups of eight and left over, a map three rows high,
    /// k = 3; values with ties and negative ones.</summary>
    [Theory]
    [InlineData(3, 13, 2, 50, 2)]
    [InlineData(2, 11, 2, 37, 2)]
    [InlineData(1, 16, 3, 34, 2)]
    [InlineData(2, 5, 2, 33, 2)]
    [InlineData(2, 3, 3, 10, 3)]
    public void MaxPoolToSequenceMatchesReference(int batch, int channels, int h, int w, int k)
    {
        var dev = TestDevices.Host;
        var s = Pooling.MaxPoolShape(batch, channels, h, w, k);
        foreach (var x in new[] { Reference.Random(s.InputLength, 24, -3f, 3f), Array.ConvertAll(Reference.Random(s.InputLength, 25, 0f, 3f), MathF.Floor) })
        {
            using var tx = dev.Upload(x, s.InputLength);
            using var ty = Reference.NaNs(dev, s.OutputLength);
            new Pooling(dev).MaxPoolToSequence(tx.View, ty.View, s);
            var (y, _) = MaxPool(Reference.ToDouble(x), batch * channels, h, w, k);
            int steps = s.OutWidth;
            var expected = new double[y.Length];
            for (int b = 0; b < batch; b++)
                for (int c = 0; c < channels; c++)
                    for (int t = 0; t < steps; t++) expected[(b * steps + t) * channels + c] = y[(b * channels + c) * steps + t];
            Reference.AssertClose(expected, ty.ToHost(), 0, $"sequence [{batch},{channels},{h},{w}] k {k}");
        }
    }

    public static TheoryData<string, int, int, int> AverageCases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 1, 7, 97);      // H 1 × W 97
            data.Add(device, 3, 33, 3 * 7);  // H 3 × W 7
            data.Add(device, 3, 1, 1);       // 1 × 1
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(AverageCases))]
    public void GlobalAveragePoolMatchesReferenceAndFiniteDifferences(string device, int batch, int channels, int spatial)
    {
        var dev = TestDevices.Get(device);
        var pool = new Pooling(dev);
        int rows = batch * channels, n = rows * spatial;
        var x = Reference.Random(n, 31, 1f, 5f);
        using var tx = dev.Upload(x, n);
        using var ty = Reference.NaNs(dev, rows);
        pool.GlobalAveragePoolForward(tx.View, ty.View, batch, channels, spatial);
        double[] Average(double[] xs)
        {
            var y = new double[rows];
            for (int r = 0; r < rows; r++)
            {
                for (int i = 0; i < spatial; i++) y[r] += xs[r * spatial + i];
                y[r] /= spatial;
            }
            return y;
        }
        Reference.AssertClose(Average(Reference.ToDouble(x)), ty.ToHost(), 1e-6, "y");

        var r = Reference.Random(rows, 32);
        using var tdy = dev.Upload(r, rows);
        using var tdx = Reference.NaNs(dev, n);
        pool.GlobalAveragePoolBackward(tdy.View, tdx.View, batch, channels, spatial);
        var rd = Reference.ToDouble(r);
        var numeric = Reference.NumericGradient(xs => Reference.Dot(Average(xs), rd), Reference.ToDouble(x));
        Reference.AssertNormClose(numeric, tdx.ToHost(), 1e-6, "dx");

        // Accumulating adds the same gradient onto what dx holds.
        var before = Reference.Random(n, 33);
        using var tacc = dev.Upload(before, n);
        pool.GlobalAveragePoolBackward(tdy.View, tacc.View, batch, channels, spatial, accumulate: true);
        Reference.AssertClose(numeric.Select((g, i) => g + before[i]).ToArray(), tacc.ToHost(), 1e-6, "dx accumulated");
    }

    [Fact]
    public void RejectsBadShapes()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        var pool = new Pooling(dev);
        using var x = dev.Allocate(2 * 3 * 4 * 6);
        using var y = dev.Allocate(2 * 3 * 2 * 3);
        using var idx = dev.Allocate<int>(2 * 3 * 2 * 3);
        Assert.Throws<ArgumentException>(() => Pooling.MaxPoolShape(2, 3, 4, 6, 0));
        var e = Assert.Throws<ArgumentException>(() => pool.MaxPoolForward(x.View, y.View, idx.View, Pooling.MaxPoolShape(2, 3, 4, 7, 2)));
        Assert.Contains("x has 144", e.Message);
        var bad = Pooling.MaxPoolShape(2, 3, 4, 6, 2);
        bad.OutWidth = 4;
        Assert.Throws<ArgumentException>(() => pool.MaxPoolBackward(y.View, idx.View, x.View, bad));
        e = Assert.Throws<ArgumentException>(() => pool.GlobalAveragePoolForward(x.View, y.View, 2, 3, 24));
        Assert.Contains("y has 36 elements, expected 6", e.Message);
    }
}
