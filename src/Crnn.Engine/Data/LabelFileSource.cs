namespace Crnn.Engine.Data;

/// <summary>
/// A dataset as an endless training stream: a seeded shuffled order per epoch, images decoded in parallel per
/// batch. A bad image (missing, empty, corrupt) is skipped, reported once, and replaced by the next good sample
/// of the order. Position advances by one per sample handed out, as <see cref="IBatchSource"/> (and
/// <see cref="PrefetchingSource"/>) expect, and the sample at a position depends only on (seed, position, which
/// images are bad): a resumed run draws exactly the same samples. With <c>strict</c> a bad image is an error.
/// </summary>
public sealed class LabelFileSource : IBatchSource
{
    readonly ILabeledDataset _data;
    readonly bool _strict;
    readonly HashSet<int> _bad = [];
    int[] _order = [];
    int _orderEpoch = -1;

    /// <summary>Label-file samples already read (see <see cref="LabelFile.Read"/>).</summary>
    public LabelFileSource(IReadOnlyList<LabeledImage> samples, int seed) : this(new LabelFileDataset(samples, "samples"), seed) { }

    /// <param name="data">owned: disposed with the source</param>
    /// <param name="format">the model's preprocessing (default: the seed model's 32 × 100 RGB)</param>
    public LabelFileSource(ILabeledDataset data, int seed, bool strict = false, ImageFormat? format = null)
    {
        if (data.Count == 0) throw new ArgumentException($"dataset {data.Name} has no samples");
        (_data, _strict) = (data, strict);
        Seed = seed;
        Format = format ?? ImageFormat.Seed;
    }

    public ImageFormat Format { get; }

    public int Seed { get; }
    public long Position { get; set; }
    public long EpochSize => _data.Count;
    public ILabeledDataset Data => _data;

    /// <summary>Told about each bad image the first time it is met (called on the thread that draws batches).</summary>
    public Action<string>? Report { get; set; }

    /// <summary>Distinct bad images met so far (since this source was made).</summary>
    public int BadImages
    {
        get { lock (_bad) return _bad.Count; }
    }

    public void NextBatch(float[] images, string[] texts, int[][] labels)
    {
        int batch = texts.Length;
        if (images.Length != batch * Format.Size)
            throw new ArgumentException($"{images.Length} floats do not hold {batch} images of {Format.Size}");
        var chosen = new int[batch];  // dataset index of each slot
        var ahead = new long[batch];  // how far past its own position a slot has looked for a good sample
        var pending = Enumerable.Range(0, batch).ToList();
        while (pending.Count > 0)
        {
            foreach (int b in pending) chosen[b] = NextGood(Position + b, ref ahead[b]);
            var errors = ImageDecoding.DecodeParallel(pending, (k, chw) => _data.Decode(chosen[pending[k]], chw, Format), images, Format.Size);
            var retry = new List<int>();
            for (int k = 0; k < pending.Count; k++)
            {
                if (errors[k] is not { } error) continue;
                if (_strict) throw new InvalidDataException($"{error} (--strict stops at the first bad sample)");
                int b = pending[k];
                bool first;
                lock (_bad) first = _bad.Add(chosen[b]);
                if (first) Report?.Invoke($"skipped bad image {_data.Describe(chosen[b])}: {error} ({BadImages} bad so far)");
                retry.Add(b);
            }
            pending = retry;
        }
        for (int b = 0; b < batch; b++)
        {
            texts[b] = _data.Text(chosen[b]);
            labels[b] = _data.Label(chosen[b]);
        }
        Position += batch;
    }

    /// <summary>The first sample at or after <paramref name="position"/> + <paramref name="ahead"/> not known to be bad.</summary>
    int NextGood(long position, ref long ahead)
    {
        while (true)
        {
            if (BadImages == _data.Count) throw new InvalidDataException($"no image of {_data.Name} can be read ({_data.Count:N0} bad)");
            int index = IndexAt(position + ahead);
            bool bad;
            lock (_bad) bad = _bad.Contains(index);
            if (!bad) return index;
            ahead++;
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
