using BenchmarkDotNet.Attributes;
using Crnn.Engine;
using Crnn.Engine.Synthetic;

namespace Crnn.Bench;

/// <summary>
/// Rendering and preprocessing 64 synthetic words (the embedded training source): on one thread (the
/// generator's own cost; target ≥ 500 images/s) and as the trainer draws them (a parallel batch), each with the
/// default augmentations and plain (no augmentation) for comparison. Images/s = 64 / mean time.
/// </summary>
public class SyntheticWordsBenchmarks : IWork
{
    const int Batch = 64;
    SyntheticWords _words = null!;
    readonly float[] _images = new float[Batch * 3 * 32 * 100];
    readonly string[] _texts = new string[Batch];
    readonly int[][] _labels = new int[Batch][];
    long _next;

    [Params(true, false)]
    public bool Augment { get; set; }

    [GlobalSetup]
    public void Setup() => _words = new SyntheticWords(CharDictionary.Default, seed: 1, new SyntheticOptions { Augment = Augment });

    /// <summary>64 samples one after another on the calling thread: render + resize + normalize.</summary>
    [Benchmark]
    public void SingleThread64()
    {
        const int size = 3 * 32 * 100;
        for (int b = 0; b < Batch; b++) _words.Sample(_next++, _images.AsSpan(b * size, size));
    }

    /// <summary>One training batch of 64, rendered in parallel as the trainer does.</summary>
    [Benchmark]
    public void ParallelBatch64() => _words.NextBatch(_images, _texts, _labels);

    /// <summary>Bytes: the preprocessed float images written.</summary>
    public (double Flops, double Bytes) Work(string method) => (0, _images.Length * 4.0);

    [GlobalCleanup]
    public void Cleanup() => _words.Dispose();
}
