using ILGPU;
using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>The fused squeeze-excite kernels (gpu policy) against a float64 reference of the block and its finite
/// differences, bit-identical across grid sizes.</summary>
public class ExcitationTests
{
    static readonly ExcitationShape Small = new() { Batch = 3, Channels = 5, Squeeze = 3, Spatial = 7 };
    /// <summary>The seed model's widest squeeze-excite (480 channels squeezed to 120, over 2×25 positions), at batch 2.</summary>
    static readonly ExcitationShape Model = new() { Batch = 2, Channels = 480, Squeeze = 120, Spatial = 50 };

    /// <summary>The devices that run the gpu policy: the GPU-like CPU device always, the default one when it does.</summary>
    public static TheoryData<string> GpuPolicyDevices()
    {
        var data = new TheoryData<string> { TestDevices.GpuLike };
        if (!TestDevices.Get(TestDevices.Default).UsesHost) data.Add(TestDevices.Default);
        return data;
    }

    /// <summary>float64 forward and backward of y = x · hardsigmoid(W2·relu(W1·mean(x) + b1) + b2) for output gradient r:
    /// y, gate, dx, dw1, db1, dw2, db2.</summary>
    static double[][] Reference64(ExcitationShape s, double[] x, double[] w1, double[] b1, double[] w2, double[] b2, double[] r)
    {
        int C = s.Channels, S = s.Squeeze, P = s.Spatial;
        var (y, gate, dx) = (new double[x.Length], new double[s.Batch * C], new double[x.Length]);
        var (dw1, db1, dw2, db2) = (new double[w1.Length], new double[S], new double[w2.Length], new double[C]);
        for (int n = 0; n < s.Batch; n++)
        {
            var (pooled, z1, h) = (new double[C], new double[S], new double[S]);
            for (int c = 0; c < C; c++)
                for (int i = 0; i < P; i++) pooled[c] += x[(n * C + c) * P + i] / P;
            for (int j = 0; j < S; j++)
            {
                z1[j] = b1[j];
                for (int c = 0; c < C; c++) z1[j] += w1[j * C + c] * pooled[c];
                h[j] = Math.Max(z1[j], 0);
            }
            var dz2 = new double[C];
            for (int c = 0; c < C; c++)
            {
                double z = b2[c];
                for (int j = 0; j < S; j++) z += w2[c * S + j] * h[j];
                double g = gate[n * C + c] = Math.Clamp(0.2 * z + 0.5, 0, 1);
                double dg = 0;
                for (int i = 0; i < P; i++)
                {
                    int k = (n * C + c) * P + i;
                    y[k] = x[k] * g;
                    dg += r[k] * x[k];
                }
                dz2[c] = z > -2.5 && z < 2.5 ? 0.2 * dg : 0;
                db2[c] += dz2[c];
                for (int j = 0; j < S; j++) dw2[c * S + j] += dz2[c] * h[j];
            }
            var dz1 = new double[S];
            for (int j = 0; j < S; j++)
            {
                for (int c = 0; c < C; c++) dz1[j] += w2[c * S + j] * dz2[c];
                if (z1[j] <= 0) dz1[j] = 0;
                db1[j] += dz1[j];
                for (int c = 0; c < C; c++) dw1[j * C + c] += dz1[j] * pooled[c];
            }
            for (int c = 0; c < C; c++)
            {
                double dPooled = 0;
                for (int j = 0; j < S; j++) dPooled += w1[j * C + c] * dz1[j];
                for (int i = 0; i < P; i++)
                {
                    int k = (n * C + c) * P + i;
                    dx[k] = r[k] * gate[n * C + c] + dPooled / P;
                }
            }
        }
        return [y, gate, dx, dw1, db1, dw2, db2];
    }

    sealed class Block(Device dev, ExcitationShape s) : IDisposable
    {
        public readonly ExcitationShape Shape = s;
        public readonly float[] X = Reference.Random(s.Batch * s.Channels * s.Spatial, 1, -2f, 2f);
        public readonly float[] W1 = Reference.Random(s.Squeeze * s.Channels, 2, -2f, 2f);
        public readonly float[] B1 = Reference.Random(s.Squeeze, 3);
        public readonly float[] W2 = Reference.Random(s.Channels * s.Squeeze, 4, -3f, 3f);
        public readonly float[] B2 = Reference.Random(s.Channels, 5);
        public readonly float[] R = Reference.Random(s.Batch * s.Channels * s.Spatial, 6);
        readonly List<Tensor<float>> _tensors = [];

        public Tensor<float> Up(float[] values) => Keep(dev.Upload(values, values.Length));

        /// <summary>The values as a view at an odd offset into a larger buffer, as parameters are views of the store's.</summary>
        public ArrayView<float> UpAt(float[] values, int offset)
        {
            var padded = new float[offset + values.Length + 3];
            values.CopyTo(padded, offset);
            return Up(padded).View.SubView(offset, values.Length);
        }
        public Tensor<float> NaNs(int length) => Keep(Reference.NaNs(dev, length));
        Tensor<float> Keep(Tensor<float> t) { _tensors.Add(t); return t; }

        /// <summary>Forward and backward (output gradient R): y, gate, dx, dw1, db1, dw2, db2.</summary>
        public float[][] Run()
        {
            var k = new Excitation(dev);
            var (x, dy) = (Up(X), Up(R));
            var (w1, b1, w2, b2) = (UpAt(W1, 5), UpAt(B1, 7), UpAt(W2, 11), UpAt(B2, 13));
            int rows = Shape.Batch * Shape.Channels, hiddenRows = Shape.Batch * Shape.Squeeze, n = X.Length;
            var (pooled, squeezed, hidden, excited, gate, y) = (NaNs(rows), NaNs(hiddenRows), NaNs(hiddenRows), NaNs(rows), NaNs(rows), NaNs(n));
            k.Forward(x.View, w1, b1, w2, b2, pooled.View, squeezed.View, hidden.View, excited.View, gate.View, y.View, Shape);
            var (dExcited, dHidden, dx) = (NaNs(rows), NaNs(hiddenRows), NaNs(n));
            var (dw1, db1, dw2, db2) = (NaNs(W1.Length), NaNs(Shape.Squeeze), NaNs(W2.Length), NaNs(Shape.Channels));
            k.Backward(x.View, dy.View, w1, w2, pooled.View, squeezed.View, hidden.View, excited.View, gate.View,
                dExcited.View, dHidden.View, dx.View, dw1.View, db1.View, dw2.View, db2.View, Shape);
            return [y.ToHost(), gate.ToHost(), dx.ToHost(), dw1.ToHost(), db1.ToHost(), dw2.ToHost(), db2.ToHost()];
        }

        public double[][] Expected() => Reference64(Shape, Reference.ToDouble(X), Reference.ToDouble(W1), Reference.ToDouble(B1),
            Reference.ToDouble(W2), Reference.ToDouble(B2), Reference.ToDouble(R));

        public void Dispose() => _tensors.ForEach(t => t.Dispose());
    }

    static readonly string[] Names = ["y", "gate", "dx", "dw1", "db1", "dw2", "db2"];

    /// <summary>The float64 reference's own backward against its finite differences (so it can judge the kernels').</summary>
    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferences()
    {
        var dev = TestDevices.Host;
        using var block = new Block(dev, Small);
        var (x, w1, b1, w2, b2, r) = (Reference.ToDouble(block.X), Reference.ToDouble(block.W1), Reference.ToDouble(block.B1),
            Reference.ToDouble(block.W2), Reference.ToDouble(block.B2), Reference.ToDouble(block.R));
        var expected = block.Expected();
        Assert.Contains(expected[1], g => g is > 0 and < 1);
        Assert.Contains(expected[1], g => g is 0 or 1); // saturated gates: their derivative is zero
        double Loss(double[] xs, double[] a1, double[] c1, double[] a2, double[] c2) => Reference.Dot(Reference64(Small, xs, a1, c1, a2, c2, r)[0], r);
        double[][] numeric =
        [
            Reference.NumericGradient(v => Loss(v, w1, b1, w2, b2), x), Reference.NumericGradient(v => Loss(x, v, b1, w2, b2), w1),
            Reference.NumericGradient(v => Loss(x, w1, v, w2, b2), b1), Reference.NumericGradient(v => Loss(x, w1, b1, v, b2), w2),
            Reference.NumericGradient(v => Loss(x, w1, b1, w2, v), b2),
        ];
        for (int i = 0; i < numeric.Length; i++)
            Reference.AssertNormClose(numeric[i], Array.ConvertAll(expected[i + 2], v => (float)v), 1e-6, Names[i + 2]);
    }

    [Theory]
    [MemberData(nameof(GpuPolicyDevices))]
    public void MatchesTheFloat64Reference(string device)
    {
        // float32 sums of 480 products with values of ±2: a looser tolerance at the model's shape.
        foreach (var (shape, tolerance) in new[] { (Small, 1e-5), (Model, 1e-4) })
        {
            using var block = new Block(TestDevices.Get(device), shape);
            var actual = block.Run();
            var expected = block.Expected();
            for (int i = 0; i < Names.Length; i++)
                if (i < 2) Reference.AssertClose(expected[i], actual[i], tolerance, Names[i]);
                else Reference.AssertNormClose(expected[i], actual[i], tolerance, Names[i]);
        }
    }

    /// <summary>One group (images in turn) and as many groups as images: the same bits (every sum has a fixed order).</summary>
    [Fact]
    public void SameBitsForAnyGridSize()
    {
        using var many = Device.OpenCpu(Device.GpuLikeWarp, Device.GpuLikeWarps, Device.GpuLikeGroups, KernelPolicy.Gpu);
        using var one = Device.OpenCpu(Device.GpuLikeWarp, Device.GpuLikeWarps, 1, KernelPolicy.Gpu);
        using var a = new Block(many, Small);
        using var b = new Block(one, Small);
        var first = a.Run();
        var second = b.Run();
        for (int i = 0; i < first.Length; i++) Assert.Equal(first[i], second[i]);
    }

    [Fact]
    public void RefusesTheHostPolicyAndWrongShapes()
    {
        using var block = new Block(TestDevices.Host, Small);
        var x = block.Up(block.X);
        var v = block.NaNs(Small.Batch * Small.Channels);
        var h = block.NaNs(Small.Batch * Small.Squeeze);
        Assert.Throws<NotSupportedException>(() => new Excitation(TestDevices.Host).Forward(x.View, block.Up(block.W1).View,
            block.Up(block.B1).View, block.Up(block.W2).View, block.Up(block.B2).View, v.View, h.View, h.View, v.View, v.View, x.View, Small));
        var gpu = TestDevices.Get(TestDevices.GpuLike);
        using var wrong = new Block(gpu, Small);
        var gx = wrong.Up(wrong.X);
        var gv = wrong.NaNs(Small.Batch * Small.Channels);
        var gh = wrong.NaNs(Small.Batch * Small.Squeeze);
        var error = Assert.Throws<ArgumentException>(() => new Excitation(gpu).Forward(gx.View, wrong.Up(wrong.W1).View,
            wrong.Up(wrong.B2).View, wrong.Up(wrong.W2).View, wrong.Up(wrong.B2).View, gv.View, gh.View, gh.View, gv.View, gv.View, gx.View, Small));
        Assert.Contains("b1", error.Message);
    }
}
