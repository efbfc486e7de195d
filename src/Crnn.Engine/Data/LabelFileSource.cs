namespace Crnn.Engine.Data;

/// <summary>
/// A dataset as an endless training stream: a seeded shuffled order per epoch, images decoded in parallel per
/// batch. A bad image (missing, empty, corrupt) is skipped, reported once, and replaced by the next sample of
/// the order; it still counts in <see cref="IBatchSource.Position"/>, so the stream stays a function of
/// (seed, position) and a resumed run draws exactly the same samples. With <c>strict</c> a bad image is an error.
/// </summary>
public sealed class LabelFileSource : IBatchSource
{
    readonly ILabeledDataset _data;
    readonly bool _strict;
    readonly Action<string>? _report;
    readonly HashSet<int> _bad = [];
    int[] _order = [];
    int _orderEpoch = -1;

    /// <summary>Label-file samples already read (see <see cref="LabelFile.Read"/>).</summary>
    public LabelFileSource(IReadOnlyList<LabeledImage> samples, int seed) : this(new LabelFileDataset(samples, "samples"), seed) { }

    /// <param name="data">owned: disposed with the source</param>
    /// <param name="report">told about each bad image the first time it is met</param>
    public LabelFileSource(ILabeledDataset data, int seed, bool strict = false, Action<string>? report = null)
    {
        if (data.Count == 0) throw new ArgumentException($"dataset {data.Name} has no samples");
        (_data, _strict, _report) = (data, strict, report);
        Seed = seed;
    }

    public int Seed { get; }
    public long Position { get; set; }
    public long EpochSize => _data.Count;
    public ILabeledDataset Data => _data;

    /// <summary>Distinct bad images met so far (since this source was made).</summary>
    public int BadImages => _bad.Count;

    public void NextBatch(float[] images, string[] texts, int[][] labels)
    {
        int batch = texts.Length;
        if (images.Length != batch * ImageDecoding.Size)
            throw new ArgumentException($"{images.Length} floats do not hold {batch} images of {ImageDecoding.Size}");
        int filled = 0;
        var candidates = new List<int>(batch);
        while (filled < batch)
        {
            candidates.Clear();
            while (candidates.Count < batch - filled)
            {
                if (_bad.Count == _data.Count) throw new InvalidDataException($"no image of {_data.Name} can be read ({_bad.Count:N0} bad)");
                int index = IndexAt(Position++);
                if (!_bad.Contains(index)) candidates.Add(index);
            }
            var errors = ImageDecoding.DecodePacked(candidates.Count, (k, chw) => _data.Decode(candidates[k], chw), images, filled);
            for (int k = 0; k < candidates.Count; k++)
            {
                int index = candidates[k];
                if (errors[k] is { } error)
                {
                    if (_strict) throw new InvalidDataException($"{error} (--strict stops at the first bad sample)");
                    if (_bad.Add(index)) _report?.Invoke($"skipped bad image {_data.Describe(index)}: {error} ({_bad.Count} bad so far)");
                    continue;
                }
                texts[filled] = _data.Text(index);
                labels[filled] = _data.Label(index);
                filled++;
            }
        }
    }

    int IndexAt(long position)
    {
        int count = _data.Count;
        int epoch = (int)(position / count);
        if (epoch != _orderEpoch)
        {
            // Each epoch's order depends only on (seed, epoch): resuming mid-epoch gives the same order.
            _order = Enumerable.Range(0, count).ToArray();
            new Random(unchecked(Seed * 1_000_003 + epoch)).Shuffle(_order); // not HashCode: it is salted per process
            _orderEpoch = epoch;
        }
        return _order[position % count];
    }

    public void Dispose() => _data.Dispose();
}
