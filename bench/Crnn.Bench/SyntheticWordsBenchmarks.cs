using BenchmarkDotNet.Attributes;
using Crnn.Engine;

namespace Crnn.Bench;

/// <summary>Rendering and preprocessing a batch of 64 synthetic words (the embedded training source).</summary>
public class SyntheticWordsBenchmarks : IWork
{
    const int Batch = 64;
    SyntheticWords _words = null!;
    readonly float[] _images = new float[Batch * 3 * 32 * 100];
    readonly string[] _texts = new string[Batch];
    readonly int[][] _labels = new int[Batch][];

    [GlobalSetup]
    public void Setup() => _words = new SyntheticWords(CharDictionary.Default, seed: 1);

    [Benchmark]
    public void RenderBatch64() => _words.NextBatch(_images, _texts, _labels);

    /// <summary>Bytes: the preprocessed float images written.</summary>
    public (double Flops, double Bytes) Work(string method) => (0, _images.Length * 4.0);

    [GlobalCleanup]
    public void Cleanup() => _words.Dispose();
}
