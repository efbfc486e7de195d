namespace Crnn.Engine.Data;

/// <summary>
/// An endless, seeded stream of training samples. <see cref="Position"/> (samples drawn so far) with the
/// seed is the whole state, so a checkpoint can resume the stream exactly.
/// </summary>
public interface IBatchSource : IDisposable
{
    int Seed { get; }
    long Position { get; set; }
    /// <summary>Samples in one pass over the data (synthetic sources: the nominal epoch size).</summary>
    long EpochSize { get; }

    /// <summary>Fills <paramref name="images"/> ([B, 3, H, W] of the source's format), texts and encoded labels for the next B samples.</summary>
    void NextBatch(float[] images, string[] texts, int[][] labels);
}

/// <summary>The embedded dataset: freshly rendered synthetic words, never repeating.</summary>
public sealed class SyntheticSource(CharDictionary dictionary, int seed, long epochSize = 100_000, Synthetic.SyntheticOptions? options = null,
    ImageFormat? format = null) : IBatchSource
{
    readonly SyntheticWords _words = new(dictionary, seed, options, format);

    public int Seed => _words.Seed;
    public long Position { get => _words.Position; set => _words.Position = value; }
    public long EpochSize => epochSize;
    public SyntheticWords Words => _words;

    public void NextBatch(float[] images, string[] texts, int[][] labels) => _words.NextBatch(images, texts, labels);

    public void Dispose() => _words.Dispose();
}
