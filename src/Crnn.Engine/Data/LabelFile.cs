namespace Crnn.Engine.Data;

/// <summary>One labelled image of a PaddleOCR label file.</summary>
public sealed record LabeledImage(string Path, string Text, int[] Label);

/// <summary>
/// PaddleOCR's label-file format: one <c>image_path&lt;TAB&gt;text</c> per line, paths relative to the file.
/// Lines whose text the dictionary cannot encode, or that cannot be aligned in the model's time steps,
/// are skipped with a count, so one bad line does not stop a long run.
/// </summary>
public static class LabelFile
{
    public sealed record Result(IReadOnlyList<LabeledImage> Samples, IReadOnlyList<string> Skipped);

    public static Result Read(string path, CharDictionary dictionary, int maxSteps)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"label file not found: {path}");
        string root = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var samples = new List<LabeledImage>();
        var skipped = new List<string>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0) continue;
            int tab = line.IndexOf('\t');
            if (tab < 0) { skipped.Add($"{path}:{lineNumber}: no tab between image path and text"); continue; }
            string text = line[(tab + 1)..].TrimEnd('\r');
            if (!dictionary.TryEncode(text, out var ids, out var error)) { skipped.Add($"{path}:{lineNumber}: {error}"); continue; }
            if (ids.Length == 0) { skipped.Add($"{path}:{lineNumber}: empty text"); continue; }
            if (!Alignable(ids, maxSteps)) { skipped.Add($"{path}:{lineNumber}: '{text}' needs more than {maxSteps} time steps"); continue; }
            samples.Add(new LabeledImage(Path.Combine(root, line[..tab]), text, ids));
        }
        if (samples.Count == 0) throw new InvalidDataException($"label file {path} has no usable samples ({skipped.Count} skipped)");
        return new Result(samples, skipped);
    }

    /// <summary>CTC needs one step per symbol plus a blank between repeated symbols.</summary>
    public static bool Alignable(int[] label, int steps)
    {
        int needed = label.Length;
        for (int i = 1; i < label.Length; i++) if (label[i] == label[i - 1]) needed++;
        return needed <= steps;
    }
}

/// <summary>Label-file images in a seeded shuffled order per epoch; decoded on demand.</summary>
public sealed class LabelFileSource : IBatchSource
{
    readonly IReadOnlyList<LabeledImage> _samples;
    int[] _order = [];
    int _orderEpoch = -1;

    public LabelFileSource(IReadOnlyList<LabeledImage> samples, int seed)
    {
        _samples = samples;
        Seed = seed;
    }

    public int Seed { get; }
    public long Position { get; set; }
    public long EpochSize => _samples.Count;

    public void NextBatch(float[] images, string[] texts, int[][] labels)
    {
        int size = images.Length / texts.Length;
        for (int b = 0; b < texts.Length; b++)
        {
            var sample = At(Position++);
            Preprocess.LoadFile(sample.Path).CopyTo(images.AsSpan(b * size, size));
            texts[b] = sample.Text;
            labels[b] = sample.Label;
        }
    }

    LabeledImage At(long position)
    {
        int epoch = (int)(position / _samples.Count);
        if (epoch != _orderEpoch)
        {
            // Each epoch's order depends only on (seed, epoch): resuming mid-epoch gives the same order.
            _order = Enumerable.Range(0, _samples.Count).ToArray();
            new Random(unchecked(Seed * 1_000_003 + epoch)).Shuffle(_order); // not HashCode: it is salted per process
            _orderEpoch = epoch;
        }
        return _samples[_order[position % _samples.Count]];
    }

    public void Dispose() { }
}
