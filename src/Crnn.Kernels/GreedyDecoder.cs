using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>Logits [Batch, Steps, Classes] and the CTC blank class.</summary>
public struct DecodeShape
{
    public int Batch, Steps, Classes, Blank;
}

/// <summary>
/// Greedy CTC decoding on the device: arg-max per step (the first maximum on ties), repeats collapsed,
/// blanks dropped. Confidence is the mean, over the kept steps (the first step of each run of a non-blank
/// class), of the step's maximum softmax probability; 0 for an empty result.
/// </summary>
public sealed class GreedyDecoder : IDisposable
{
    /// <summary>Written after the decoded ids of a sample, up to <c>Steps</c>.</summary>
    public const int Padding = -1;

    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, DecodeShape> _best;
    readonly Action<KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<int>, ArrayView<float>, DecodeShape> _collapse;
    // Workspace, grown on demand: per-step probabilities, and the outputs of the host-friendly Decode.
    Tensor<float>? _probs, _confidences;
    Tensor<int>? _ids, _lengths;

    public GreedyDecoder(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _best = acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, DecodeShape>(BestClassKernel);
        _collapse = acc.LoadStreamKernel<ArrayView<int>, ArrayView<float>, ArrayView<int>, ArrayView<float>, DecodeShape>(CollapseKernel);
    }

    /// <summary>
    /// Decodes <paramref name="logits"/> [batch, steps, classes] on the device: ids [batch, steps] gets each
    /// sample's class ids first, then <see cref="Padding"/>; lengths [batch] the decoded lengths;
    /// confidences [batch] the mean kept-step probability.
    /// </summary>
    public void Decode(ArrayView<float> logits, int batch, int steps, int classes, ArrayView<int> ids,
        ArrayView<int> lengths, ArrayView<float> confidences, int blank = 0)
    {
        if (batch < 0 || steps < 0 || classes < 1) throw new ArgumentException($"bad decode shape [{batch},{steps},{classes}] (classes must be ≥ 1)");
        if (blank < 0 || blank >= classes) throw new ArgumentException($"blank index {blank} is outside the {classes} classes");
        long rows = (long)batch * steps;
        if (logits.Length != rows * classes) throw new ArgumentException($"logits have {logits.Length} elements, expected [{batch},{steps},{classes}]");
        if (ids.Length != rows) throw new ArgumentException($"ids have {ids.Length} elements, expected [{batch},{steps}]");
        if (lengths.Length != batch) throw new ArgumentException($"lengths have {lengths.Length} elements, expected {batch}");
        if (confidences.Length != batch) throw new ArgumentException($"confidences have {confidences.Length} elements, expected {batch}");
        if (batch == 0) return;
        var shape = new DecodeShape { Batch = batch, Steps = steps, Classes = classes, Blank = blank };
        var probs = Grow(ref _probs, (int)rows);
        if (_device.Launch(nameof(BestClassKernel), rows, 4.0 * rows * classes, 4.0 * rows * classes, out var grid))
            _best(grid, logits, ids, probs, shape);
        if (_device.Launch(nameof(CollapseKernel), batch, 2.0 * rows, 8.0 * rows, out var collapseGrid))
            _collapse(collapseGrid, ids, probs, lengths, confidences, shape);
    }

    /// <summary>Decodes a [batch, steps, classes] tensor and returns each sample's class ids and confidence.</summary>
    public (int[][] Ids, float[] Confidences) Decode(Tensor<float> logits, int blank = 0)
    {
        if (logits.Shape.Length != 3) throw new ArgumentException($"logits must be [batch, steps, classes], got [{string.Join(",", logits.Shape)}]");
        int batch = logits.Shape[0], steps = logits.Shape[1], classes = logits.Shape[2];
        var ids = Grow(ref _ids, batch * steps);
        var lengths = Grow(ref _lengths, batch);
        var confidences = Grow(ref _confidences, batch);
        Decode(logits.View, batch, steps, classes, ids, lengths, confidences, blank);
        var hostIds = new int[batch * steps];
        var hostLengths = new int[batch];
        var hostConfidences = new float[batch];
        if (batch > 0)
        {
            if (hostIds.Length > 0) ids.CopyToCPU(hostIds);
            lengths.CopyToCPU(hostLengths);
            confidences.CopyToCPU(hostConfidences);
        }
        var result = new int[batch][];
        for (int b = 0; b < batch; b++) result[b] = hostIds.AsSpan(b * steps, hostLengths[b]).ToArray();
        return (result, hostConfidences);
    }

    /// <summary>Allocates now the workspace of decoding <paramref name="batch"/> × <paramref name="steps"/>, so that
    /// decoding allocates nothing later (the model reserves it with the network of each batch size).</summary>
    public void Reserve(int batch, int steps) => Grow(ref _probs, batch * steps);

    /// <summary>The first <paramref name="count"/> elements of a workspace buffer, reallocated when too small.</summary>
    ArrayView<T> Grow<T>(ref Tensor<T>? buffer, int count) where T : unmanaged
    {
        if (buffer == null || buffer.Length < count)
        {
            buffer?.Dispose();
            buffer = _device.Allocate<T>(Math.Max(count, 1));
        }
        return buffer.View.SubView(0, count);
    }

    /// <summary>Per step: the arg-max class and its softmax probability 1/Σ exp(x − max), in one online pass
    /// (the running sum is rescaled when the maximum moves), so large class counts read the logits once.</summary>
    static void BestClassKernel(ArrayView<float> logits, ArrayView<int> ids, ArrayView<float> probs, DecodeShape s)
    {
        int rows = s.Batch * s.Steps, stride = Grid.DimX * Group.DimX;
        for (int row = Grid.GlobalIndex.X; row < rows; row += stride)
        {
            int first = row * s.Classes;
            float best = logits[first], sum = 1f;
            int arg = 0;
            for (int c = 1; c < s.Classes; c++)
            {
                float x = logits[first + c];
                if (x > best)
                {
                    sum = sum * XMath.Exp(best - x) + 1f;
                    best = x;
                    arg = c;
                }
                else sum += XMath.Exp(x - best);
            }
            ids[row] = arg;
            probs[row] = 1f / sum;
        }
    }

    /// <summary>Per sample: collapses the arg-max sequence in place (ids are written at or before the step
    /// being read), pads, and averages the kept steps' probabilities.</summary>
    static void CollapseKernel(ArrayView<int> ids, ArrayView<float> probs, ArrayView<int> lengths, ArrayView<float> confidences, DecodeShape s)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int b = Grid.GlobalIndex.X; b < s.Batch; b += stride)
        {
            int first = b * s.Steps, length = 0, previous = -1;
            float sum = 0f;
            for (int t = 0; t < s.Steps; t++)
            {
                int k = ids[first + t];
                if (k != s.Blank && k != previous)
                {
                    ids[first + length] = k;
                    sum += probs[first + t];
                    length++;
                }
                previous = k;
            }
            for (int t = length; t < s.Steps; t++) ids[first + t] = Padding;
            lengths[b] = length;
            confidences[b] = length > 0 ? sum / length : 0f;
        }
    }

    public void Dispose()
    {
        _probs?.Dispose();
        _confidences?.Dispose();
        _ids?.Dispose();
        _lengths?.Dispose();
    }
}
