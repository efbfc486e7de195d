using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static Crnn.Kernels.HostMemory;

namespace Crnn.Kernels;

/// <summary>
/// The CPU path of squeeze-excite's row operations over [rows = batch·channels, spatial] (<see cref="ChannelScale"/>
/// and the global average of <see cref="Pooling"/>), in parallel over rows. Products are element-wise; sums run
/// over each row in order, as the kernels do, so both policies give the same bits.
/// </summary>
internal static unsafe class HostRows
{
    const int V = 8;

    /// <summary>y[r, i] = x[r, i]·s[r]; y may be x.</summary>
    public static void Scale(float* x, float* s, float* y, int rows, int spatial)
    {
        nint px = (nint)x, ps = (nint)s, py = (nint)y;
        For(rows, spatial, (first, end) =>
        {
            for (int r = first; r < end; r++)
                ScaleRow((float*)px + (long)r * spatial, ((float*)ps)[r], (float*)py + (long)r * spatial, spatial);
        });
    }

    /// <summary>y[i] = x[i]·f over one row; y may be x.</summary>
    static void ScaleRow(float* x, float f, float* y, int n)
    {
        var fv = Vector256.Create(f);
        int i = 0;
        for (; i + V <= n; i += V) (Vector256.Load(x + i) * fv).Store(y + i);
        for (; i < n; i++) y[i] = x[i] * f;
    }

    /// <summary>ds[r] = Σ_i dy[r, i]·x[r, i], in order.</summary>
    public static void ScaleGradient(float* x, float* dy, float* ds, int rows, int spatial)
    {
        nint px = (nint)x, pdy = (nint)dy, pds = (nint)ds;
        For(rows, 2L * spatial, (first, end) =>
        {
            for (int r = first; r < end; r++)
            {
                float* xr = (float*)px + (long)r * spatial, dyr = (float*)pdy + (long)r * spatial;
                float sum = 0f;
                for (int i = 0; i < spatial; i++) sum += dyr[i] * xr[i];
                ((float*)pds)[r] = sum;
            }
        });
    }

    /// <summary>y[r] = (Σ_i x[r, i], in order) / spatial.</summary>
    public static void AverageForward(float* x, float* y, int rows, int spatial)
    {
        nint px = (nint)x, py = (nint)y;
        For(rows, spatial, (first, end) =>
        {
            for (int r = first; r < end; r++)
            {
                float* xr = (float*)px + (long)r * spatial;
                float sum = 0f;
                for (int i = 0; i < spatial; i++) sum += xr[i];
                ((float*)py)[r] = sum / spatial;
            }
        });
    }

    /// <summary>dx[r, i] = dy[r]/spatial, or added to dx with <paramref name="accumulate"/>.</summary>
    public static void AverageBackward(float* dy, float* dx, int rows, int spatial, bool accumulate)
    {
        nint pdy = (nint)dy, pdx = (nint)dx;
        For(rows, spatial, (first, end) =>
        {
            for (int r = first; r < end; r++)
            {
                float g = ((float*)pdy)[r] / spatial;
                float* dxr = (float*)pdx + (long)r * spatial;
                if (accumulate) for (int i = 0; i < spatial; i++) dxr[i] += g;
                else new Span<float>(dxr, spatial).Fill(g);
            }
        });
    }

    /// <summary>
    /// Squeeze-excite for inference, image by image in one pass: per channel the mean over positions, then
    /// relu(W1·mean + b1), gate = hardsigmoid(W2·that + b2), y = x·gate, without the separate kernels' buffers
    /// or launches (sums in eight lanes, so the last bits differ from training's fixed-order chains). With
    /// <paramref name="gatesOut"/> the gates [B, C] are written there; without <paramref name="y"/> x is not scaled
    /// (the next 1×1 convolution scales its input as it reads it).
    /// </summary>
    public static void SqueezeExcite(float* x, float* w1, float* b1, float* w2, float* b2, float* y, float* gatesOut,
        int batch, int channels, int squeeze, int spatial)
    {
        nint px = (nint)x, pw1 = (nint)w1, pb1 = (nint)b1, pw2 = (nint)w2, pb2 = (nint)b2, py = (nint)y, pg = (nint)gatesOut;
        For(batch, 3L * channels * spatial, (first, end) =>
        {
            float* pooled = Scratch(ref t_pooled, 2 * channels + squeeze), hidden = pooled + channels, gates = hidden + squeeze;
            for (int b = first; b < end; b++)
            {
                float* xi = (float*)px + (long)b * channels * spatial, yi = py == 0 ? null : (float*)py + (long)b * channels * spatial;
                for (int c = 0; c < channels; c++) pooled[c] = Sum(xi + (long)c * spatial, spatial) / spatial;
                Dots((float*)pw1, pooled, hidden, squeeze, channels);
                for (int j = 0; j < squeeze; j++) hidden[j] = Math.Max(hidden[j] + ((float*)pb1)[j], 0f);
                Dots((float*)pw2, hidden, gates, channels, squeeze);
                for (int c = 0; c < channels; c++)
                {
                    float gate = Activations.Apply(3, gates[c] + ((float*)pb2)[c]);
                    if (pg != 0) ((float*)pg)[(long)b * channels + c] = gate;
                    if (py != 0) ScaleRow(xi + (long)c * spatial, gate, yi + (long)c * spatial, spatial);
                }
            }
        });
    }

    [ThreadStatic] static float[]? t_pooled;

    /// <summary>out[r] = W[r, :]·v for the rows of W [rows, n], or out[r] += it with <paramref name="accumulate"/>: four
    /// rows at a time (v loaded once for four, four independent chains), each row's products in eight lanes, then the
    /// lanes and the tail (inference: throughput over a fixed chain; the order depends on n alone).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Dots(float* w, float* v, float* output, int rows, int n, bool accumulate = false)
    {
        int r = 0, vectorEnd = n / V * V;
        for (; r + 4 <= rows; r += 4)
        {
            float* w0 = w + (long)r * n, w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int i = 0; i < vectorEnd; i += V)
            {
                var x = Vector256.Load(v + i);
                a0 = MultiplyAdd(Vector256.Load(w0 + i), x, a0);
                a1 = MultiplyAdd(Vector256.Load(w1 + i), x, a1);
                a2 = MultiplyAdd(Vector256.Load(w2 + i), x, a2);
                a3 = MultiplyAdd(Vector256.Load(w3 + i), x, a3);
            }
            Put(output + r, Tail(w0, v, vectorEnd, n, HostMemory.Sum(a0)), accumulate);
            Put(output + r + 1, Tail(w1, v, vectorEnd, n, HostMemory.Sum(a1)), accumulate);
            Put(output + r + 2, Tail(w2, v, vectorEnd, n, HostMemory.Sum(a2)), accumulate);
            Put(output + r + 3, Tail(w3, v, vectorEnd, n, HostMemory.Sum(a3)), accumulate);
        }
        for (; r < rows; r++)
        {
            float* wr = w + (long)r * n;
            var a = Vector256<float>.Zero;
            for (int i = 0; i < vectorEnd; i += V) a = MultiplyAdd(Vector256.Load(wr + i), Vector256.Load(v + i), a);
            Put(output + r, Tail(wr, v, vectorEnd, n, HostMemory.Sum(a)), accumulate);
        }
    }

    static void Put(float* output, float dot, bool accumulate) => *output = accumulate ? *output + dot : dot;

    static float Tail(float* a, float* b, int from, int n, float sum)
    {
        for (int i = from; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>Σ a in four eight-lane chains (a row of 100–800 positions), then the chains, the lanes and the tail.</summary>
    static float Sum(float* a, int n)
    {
        Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
        int i = 0;
        for (; i + 4 * V <= n; i += 4 * V)
        {
            s0 += Vector256.Load(a + i);
            s1 += Vector256.Load(a + i + V);
            s2 += Vector256.Load(a + i + 2 * V);
            s3 += Vector256.Load(a + i + 3 * V);
        }
        for (; i + V <= n; i += V) s0 += Vector256.Load(a + i);
        float sum = HostMemory.Sum(s0 + s1 + (s2 + s3));
        for (; i < n; i++) sum += a[i];
        return sum;
    }
}
