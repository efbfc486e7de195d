using Crnn.Engine.Data;
using Crnn.Engine.Synthetic;

namespace Crnn.Engine.Training;

/// <summary>
/// Held-out labelled images, read a chunk at a time at each validation: kept in memory (the synthetic words,
/// a few hundred), or decoded from their dataset each time (<see cref="Stream"/>), so a validation set of any
/// size needs memory for one chunk only.
/// </summary>
public sealed class ValidationSet : IDisposable
{
    /// <summary>Writes images [start, start + count) into slots 0..count-1 of the destination ([N, 3, H, W]).</summary>
    public delegate void Reader(int start, int count, float[] destination);

    readonly Reader _read;
    readonly IDisposable? _source;

    public IReadOnlyList<string> Texts { get; }
    public int Count => Texts.Count;
    /// <summary>Floats per image (3 × H × W).</summary>
    public int ImageSize { get; }

    /// <summary>Images already preprocessed, [texts.Count, 3, H, W].</summary>
    public ValidationSet(float[] images, IReadOnlyList<string> texts) : this(texts, SizeOfEach(images, texts.Count), null!) =>
        _read = (start, count, destination) => images.AsSpan(start * ImageSize, count * ImageSize).CopyTo(destination);

    static int SizeOfEach(float[] images, int count) =>
        count == 0 && images.Length == 0 ? ImageDecoding.Size
        : count > 0 && images.Length % count == 0 ? images.Length / count
        : throw new ArgumentException($"{images.Length} floats are not {count} whole images");

    ValidationSet(IReadOnlyList<string> texts, int imageSize, Reader read, IDisposable? source = null) =>
        (Texts, ImageSize, _read, _source) = (texts, imageSize, read, source);

    public void Read(int start, int count, float[] destination)
    {
        if (start < 0 || count < 0 || start + count > Count || count * ImageSize > destination.Length)
            throw new ArgumentOutOfRangeException(nameof(count), $"images {start}..{start + count} of {Count} into {destination.Length} floats");
        _read(start, count, destination);
    }

    /// <summary>Renders <paramref name="count"/> synthetic words from a seed the training stream never uses.</summary>
    public static ValidationSet Synthetic(CharDictionary dictionary, int count, int seed, SyntheticOptions? options = null, ImageFormat? format = null)
    {
        using var words = new SyntheticWords(dictionary, seed, options, format);
        var images = new float[count * Preprocess.Channels * words.OutHeight * words.OutWidth];
        var texts = new string[count];
        words.NextBatch(images, texts, new int[count][]);
        return new ValidationSet(images, texts);
    }

    /// <summary>Chunk size of the first pass over a streamed dataset.</summary>
    const int ScanChunk = 256;

    /// <summary>
    /// The images of <paramref name="data"/> (which the set then owns), decoded at each validation. A first
    /// pass, a chunk at a time, finds those that cannot be read: each is left out and passed to
    /// <paramref name="skipped"/> (sample, message), or, with <paramref name="strict"/>, is an error.
    /// </summary>
    public static ValidationSet Stream(ILabeledDataset data, bool strict, Action<string, string> skipped, ImageFormat? format = null)
    {
        format ??= ImageFormat.Seed;
        try
        {
            var good = new List<int>(data.Count);
            var chunk = new float[ScanChunk * format.Size];
            for (int start = 0; start < data.Count; start += ScanChunk)
            {
                int n = Math.Min(ScanChunk, data.Count - start);
                var errors = ImageDecoding.DecodeParallel(Enumerable.Range(0, n).ToArray(), (k, chw) => data.Decode(start + k, chw, format), chunk, format.Size);
                for (int k = 0; k < n; k++)
                {
                    if (errors[k] is null) { good.Add(start + k); continue; }
                    if (strict) throw new InvalidDataException($"{data.Describe(start + k)}: {errors[k]} (--strict)");
                    skipped(data.Describe(start + k), errors[k]!);
                }
            }
            if (good.Count == 0) throw new InvalidDataException($"no validation image of {data.Name} can be read");
            var texts = good.Select(data.Text).ToList();
            return new ValidationSet(texts, format.Size, (start, count, destination) =>
            {
                var errors = ImageDecoding.DecodeParallel(Enumerable.Range(0, count).ToArray(), (k, chw) => data.Decode(good[start + k], chw, format), destination, format.Size);
                if (Array.FindIndex(errors, e => e != null) is var k and >= 0) // it was read at the start: changed since
                    throw new InvalidDataException($"validation image {data.Describe(good[start + k])} can no longer be read: {errors[k]}");
            }, data);
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    public void Dispose() => _source?.Dispose();
}
