using ILGPU;

namespace Crnn.Kernels;

/// <summary>Deterministic sums across the threads of one group, for kernels that share one output among many threads.</summary>
internal static class GroupReduction
{
    /// <summary>Largest group the shared scratch holds (CUDA's limit); launches must not exceed it.</summary>
    public const int MaxGroupSize = 1024;

    /// <summary>
    /// Splits the group into segments of <paramref name="width"/> consecutive threads (threads past the last
    /// whole segment give 0) and returns each segment's Σ of <paramref name="value"/> to all its threads.
    /// A shared-memory tree in a fixed order that works for any width, so the result depends only on the
    /// group shape. Every thread must call it (it has barriers); <paramref name="scratch"/> holds Group.DimX.
    /// </summary>
    public static float SegmentSum(float value, ArrayView<float> scratch, int tid, int threads, int width)
    {
        int lane = tid % width, used = threads / width * width;
        scratch[tid] = tid < used ? value : 0f;
        Group.Barrier();
        for (int active = width; active > 1;)
        {
            int half = (active + 1) / 2;
            if (tid < used && lane + half < active) scratch[tid] += scratch[tid + half];
            Group.Barrier();
            active = half;
        }
        float sum = scratch[tid - lane];
        // The next call overwrites the scratch: wait until every thread has read its result.
        Group.Barrier();
        return sum;
    }
}
