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
            float* xs = (float*)px, ys = (float*)py;
            for (int r = first; r < end; r++)
            {
                float f = ((float*)ps)[r];
                var fv = Vector256.Create(f);
                long start = (long)r * spatial, i = start, stop = start + spatial;
                for (; i + V <= stop; i += V) (Vector256.Load(xs + i) * fv).Store(ys + i);
                for (; i < stop; i++) ys[i] = xs[i] * f;
            }
        });
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
}
