using System.Runtime.Intrinsics;
using static Crnn.Kernels.HostMemory;

namespace Crnn.Kernels;

/// <summary>
/// The CPU path of <see cref="BatchNorm"/>: host code on the CPU accelerator's memory (see <see cref="HostMemory"/>),
/// parallel over channels, 8-wide SIMD along each image's contiguous spatial run of a channel.
/// <para>
/// Deterministic: a channel's sums belong to one task and run over images in order, each run in 8-lane blocks
/// with the leftover elements in a scalar sum, lanes combined in a fixed order. The order depends on the shape only.
/// </para>
/// </summary>
internal static unsafe class HostBatchNorm
{
    const int V = 8;

    /// <summary>Σ f over channel c's values: 8 lane sums over the runs' full blocks plus a scalar sum of the rest.</summary>
    static float ChannelSum(float* x, BatchNormShape s, int c, float mean, bool squares)
    {
        var acc = Vector256<float>.Zero;
        var m = Vector256.Create(mean);
        float tail = 0f;
        int full = s.Spatial / V * V;
        for (int b = 0; b < s.Batch; b++)
        {
            float* run = x + ((long)b * s.Channels + c) * s.Spatial;
            int i = 0;
            if (squares)
            {
                for (; i < full; i += V) { var d = Vector256.Load(run + i) - m; acc = MultiplyAdd(d, d, acc); }
                for (; i < s.Spatial; i++) { float d = run[i] - mean; tail += d * d; }
            }
            else
            {
                for (; i < full; i += V) acc += Vector256.Load(run + i);
                for (; i < s.Spatial; i++) tail += run[i];
            }
        }
        return Sum(acc) + tail;
    }

    public static void ForwardTraining(float* x, float* gamma, float* beta, float* y, float* saveMean, float* saveInvStd,
        float* runningMean, float* runningVar, BatchNormShape s, float momentum)
    {
        nint px = (nint)x, pg = (nint)gamma, pb = (nint)beta, py = (nint)y, psm = (nint)saveMean, psi = (nint)saveInvStd,
            prm = (nint)runningMean, prv = (nint)runningVar;
        For(s.Channels, 4L * s.Batch * s.Spatial, (first, end) =>
        {
            for (int c = first; c < end; c++)
                ForwardChannel((float*)px, (float*)pg, (float*)pb, (float*)py, (float*)psm, (float*)psi, (float*)prm, (float*)prv, s, momentum, c);
        });
    }

    static void ForwardChannel(float* x, float* gamma, float* beta, float* y, float* saveMean, float* saveInvStd,
        float* runningMean, float* runningVar, BatchNormShape s, float momentum, int c)
    {
        float inverseCount = 1f / (s.Batch * s.Spatial);
        float mean = ChannelSum(x, s, c, 0f, squares: false) * inverseCount;
        // Second pass over centred values: no cancellation when the mean is large against the spread.
        float variance = ChannelSum(x, s, c, mean, squares: true) * inverseCount;
        float invStd = 1f / MathF.Sqrt(variance + BatchNorm.Epsilon);
        float scale = gamma[c] * invStd, shift = beta[c];
        Normalize(x, y, s, c, mean, scale, shift);
        saveMean[c] = mean;
        saveInvStd[c] = invStd;
        runningMean[c] = momentum * runningMean[c] + (1f - momentum) * mean;
        runningVar[c] = momentum * runningVar[c] + (1f - momentum) * variance;
    }

    /// <summary>y = (x − mean)·scale + shift over channel c (y may be x).</summary>
    static void Normalize(float* x, float* y, BatchNormShape s, int c, float mean, float scale, float shift)
    {
        var m = Vector256.Create(mean);
        var sc = Vector256.Create(scale);
        var sh = Vector256.Create(shift);
        int full = s.Spatial / V * V;
        for (int b = 0; b < s.Batch; b++)
        {
            long offset = ((long)b * s.Channels + c) * s.Spatial;
            float* src = x + offset, dst = y + offset;
            int i = 0;
            for (; i < full; i += V) MultiplyAdd(Vector256.Load(src + i) - m, sc, sh).Store(dst + i);
            for (; i < s.Spatial; i++) dst[i] = (src[i] - mean) * scale + shift;
        }
    }

    public static void Backward(float* x, float* dy, float* gamma, float* saveMean, float* saveInvStd, float* dx,
        float* dgamma, float* dbeta, BatchNormShape s)
    {
        nint px = (nint)x, pdy = (nint)dy, pg = (nint)gamma, psm = (nint)saveMean, psi = (nint)saveInvStd, pdx = (nint)dx,
            pdg = (nint)dgamma, pdb = (nint)dbeta;
        For(s.Channels, 5L * s.Batch * s.Spatial, (first, end) =>
        {
            for (int c = first; c < end; c++)
                BackwardChannel((float*)px, (float*)pdy, (float*)pg, (float*)psm, (float*)psi, (float*)pdx, (float*)pdg, (float*)pdb, s, c);
        });
    }

    static void BackwardChannel(float* x, float* dy, float* gamma, float* saveMean, float* saveInvStd, float* dx,
        float* dgamma, float* dbeta, BatchNormShape s, int c)
    {
        float inverseCount = 1f / (s.Batch * s.Spatial);
        float mean = saveMean[c], invStd = saveInvStd[c];
        var m = Vector256.Create(mean);
        var accDy = Vector256<float>.Zero;
        var accDyCentred = Vector256<float>.Zero;
        float tailDy = 0f, tailDyCentred = 0f;
        int full = s.Spatial / V * V;
        for (int b = 0; b < s.Batch; b++)
        {
            long offset = ((long)b * s.Channels + c) * s.Spatial;
            float* xr = x + offset, gr = dy + offset;
            int i = 0;
            for (; i < full; i += V)
            {
                var g = Vector256.Load(gr + i);
                accDy += g;
                accDyCentred = MultiplyAdd(g, Vector256.Load(xr + i) - m, accDyCentred);
            }
            for (; i < s.Spatial; i++)
            {
                float g = gr[i];
                tailDy += g;
                tailDyCentred += g * (xr[i] - mean);
            }
        }
        float dyTotal = Sum(accDy) + tailDy, dGamma = (Sum(accDyCentred) + tailDyCentred) * invStd;
        float scale = gamma[c] * invStd, meanDy = dyTotal * inverseCount, meanDyXhat = dGamma * inverseCount;
        // dx = scale·(dy − meanDy − (x − mean)·invStd·meanDyXhat); the sums are done, so dx may overwrite dy.
        float slope = invStd * meanDyXhat;
        var vScale = Vector256.Create(scale);
        var vMeanDy = Vector256.Create(meanDy);
        var vSlope = Vector256.Create(slope);
        for (int b = 0; b < s.Batch; b++)
        {
            long offset = ((long)b * s.Channels + c) * s.Spatial;
            float* xr = x + offset, gr = dy + offset, dr = dx + offset;
            int i = 0;
            for (; i < full; i += V)
                (vScale * (Vector256.Load(gr + i) - vMeanDy - (Vector256.Load(xr + i) - m) * vSlope)).Store(dr + i);
            for (; i < s.Spatial; i++) dr[i] = scale * (gr[i] - meanDy - (xr[i] - mean) * slope);
        }
        dgamma[c] = dGamma;
        dbeta[c] = dyTotal;
    }
}
