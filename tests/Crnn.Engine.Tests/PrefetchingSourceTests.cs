using Crnn.Engine.Data;
using Crnn.Engine.Training;
using Xunit;

namespace Crnn.Engine.Tests;

/// <summary>The prefetcher hands out exactly the inner source's batches, resumes exactly, reports the worker's
/// errors as they were thrown and stops cleanly.</summary>
public class PrefetchingSourceTests
{
    const int Batch = 3, ImageFloats = 4;

    /// <summary>Sample i has image values i + k/10, text "w{i}" and label [i mod 37]; it can fail from a given sample on.</summary>
    sealed class CountingSource(long failFrom = long.MaxValue) : IBatchSource
    {
        public int Seed => 11;
        public long Position { get; set; }
        public long EpochSize => 1000;
        public int Calls;
        public bool Disposed;
        public readonly SemaphoreSlim Finished = new(0);

        public void NextBatch(float[] images, string[] texts, int[][] labels)
        {
            if (Position + texts.Length > failFrom) throw new InvalidDataException($"cannot read image 'sample{failFrom}.png': the file is empty");
            int size = images.Length / texts.Length;
            for (int b = 0; b < texts.Length; b++)
            {
                long i = Position + b;
                for (int k = 0; k < size; k++) images[b * size + k] = i + k / 10f;
                texts[b] = $"w{i}";
                labels[b] = [(int)(i % 37)];
            }
            Position += texts.Length;
            Interlocked.Increment(ref Calls);
            Finished.Release();
        }

        public void Dispose() => Disposed = true;
    }

    sealed record Drawn(float[] Images, string[] Texts, int[][] Labels);

    static Drawn Next(IBatchSource source, int batch = Batch, int imageFloats = ImageFloats)
    {
        var drawn = new Drawn(new float[batch * imageFloats], new string[batch], new int[batch][]);
        source.NextBatch(drawn.Images, drawn.Texts, drawn.Labels);
        return drawn;
    }

    static void AssertSame(Drawn expected, Drawn actual)
    {
        Assert.Equal(expected.Images, actual.Images);
        Assert.Equal(expected.Texts, actual.Texts);
        Assert.Equal(expected.Labels, actual.Labels);
    }

    /// <summary>The hand-written content of batch <paramref name="n"/> of a <see cref="CountingSource"/>.</summary>
    static void AssertBatch(long n, Drawn drawn)
    {
        for (int b = 0; b < Batch; b++)
        {
            long i = n * Batch + b;
            Assert.Equal($"w{i}", drawn.Texts[b]);
            Assert.Equal([(int)(i % 37)], drawn.Labels[b]);
            for (int k = 0; k < ImageFloats; k++) Assert.Equal(i + k / 10f, drawn.Images[b * ImageFloats + k]);
        }
    }

    [Fact]
    public void HandsOutTheInnerBatchesInOrderAndCountsOnlyThoseHandedOut()
    {
        using var prefetcher = new PrefetchingSource(new CountingSource(), depth: 2);
        Assert.Equal(11, prefetcher.Seed);
        Assert.Equal(1000, prefetcher.EpochSize);
        for (int n = 0; n < 7; n++)
        {
            AssertBatch(n, Next(prefetcher));
            Assert.Equal((n + 1) * Batch, prefetcher.Position);
        }
    }

    [Fact]
    public void SyntheticWordsArriveExactlyAsWithoutPrefetching()
    {
        const int size = Preprocess.Channels * 32 * 100;
        using var direct = new SyntheticSource(CharDictionary.Default, seed: 4);
        using var prefetched = new PrefetchingSource(new SyntheticSource(CharDictionary.Default, seed: 4), depth: 3);
        for (int n = 0; n < 4; n++) AssertSame(Next(direct, 2, size), Next(prefetched, 2, size));
        Assert.Equal(direct.Position, prefetched.Position);
    }

    [Fact]
    public void ResumingMidStreamContinuesAsAStraightRun()
    {
        using var resumed = new PrefetchingSource(new CountingSource());
        resumed.Position = 2 * Batch; // as Trainer.Resume does, before the first batch
        for (int n = 2; n < 6; n++) AssertBatch(n, Next(resumed));

        // Moving back while the worker has run ahead drops its batches and restarts at the new position.
        resumed.Position = 1 * Batch;
        Assert.Equal(Batch, resumed.Position);
        for (int n = 1; n < 4; n++) AssertBatch(n, Next(resumed));
        Assert.Equal(4 * Batch, resumed.Position);
    }

    [Fact]
    public void AWorkerErrorReachesTheConsumerWithItsTypeAndMessageAfterTheGoodBatches()
    {
        var inner = new CountingSource(failFrom: 2 * Batch + 1); // batch 2 holds the broken sample
        using var prefetcher = new PrefetchingSource(inner);
        AssertBatch(0, Next(prefetcher));
        AssertBatch(1, Next(prefetcher));
        var error = Assert.Throws<InvalidDataException>(() => Next(prefetcher));
        Assert.Equal($"cannot read image 'sample{2 * Batch + 1}.png': the file is empty", error.Message);
        Assert.Equal(2 * Batch, prefetcher.Position);
        Assert.Throws<InvalidDataException>(() => Next(prefetcher)); // it stays failed
    }

    [Fact]
    public void AnotherBatchShapeIsRefused()
    {
        using var prefetcher = new PrefetchingSource(new CountingSource(), batchSize: Batch);
        Assert.Throws<ArgumentException>(() => Next(prefetcher, batch: Batch + 1));
        AssertBatch(0, Next(prefetcher));
        Assert.Throws<ArgumentException>(() => Next(prefetcher, imageFloats: ImageFloats + 1));
        Assert.Throws<ArgumentException>(() => new PrefetchingSource(new CountingSource(), depth: 0));
    }

    [Fact]
    public void DisposeStopsAWorkerBlockedOnAFullQueue()
    {
        var inner = new CountingSource();
        var prefetcher = new PrefetchingSource(inner, depth: 2);
        AssertBatch(0, Next(prefetcher));
        // After one batch is taken the worker fills both slots again (batches 1 and 2), then waits for room.
        for (int i = 0; i < 3; i++) Assert.True(inner.Finished.Wait(TimeSpan.FromSeconds(60)), "the worker did not fill the queue");
        Assert.False(inner.Finished.Wait(TimeSpan.FromMilliseconds(100)), "the worker ran past a full queue");
        // A generous bound: this only guards against a hang, it is not a speed assertion.
        var disposing = new Thread(prefetcher.Dispose);
        disposing.Start();
        Assert.True(disposing.Join(TimeSpan.FromSeconds(60)), "Dispose hung");
        Assert.True(inner.Disposed);
        Assert.Equal(3, inner.Calls);
        Assert.Throws<ObjectDisposedException>(() => Next(prefetcher));

        var kept = new CountingSource();
        new PrefetchingSource(kept, leaveOpen: true).Dispose(); // never started: nothing to stop
        Assert.False(kept.Disposed);
    }

    /// <summary>Two training steps of the seed model, fed directly or through the prefetcher.</summary>
    static float[] TrainSeedModel(bool prefetch)
    {
        using var device = Kernels.Device.Open(Environment.GetEnvironmentVariable("CRNN_TEST_DEVICE") is { Length: > 0 } s ? s : "cpu");
        using var model = new CrnnModel(device, new ModelConfig());
        model.Initialize(seed: 3);
        IBatchSource words = new SyntheticSource(CharDictionary.Default, seed: 8);
        using var source = prefetch ? new PrefetchingSource(words) : words;
        var options = new TrainOptions { Steps = 2, BatchSize = 2, LogEvery = 1, ValidateEvery = 0 };
        string output = Directory.CreateTempSubdirectory("crnn-prefetch-").FullName;
        try
        {
            using var trainer = new Trainer(model, CharDictionary.Default, source, options, output, validation: null);
            trainer.Run();
            Assert.Equal(4, source.Position);
        }
        finally { Directory.Delete(output, recursive: true); }
        var (parameters, buffers) = model.Save();
        return [.. parameters, .. buffers];
    }

    [Fact]
    public void TrainingWithPrefetchingGivesBitIdenticalWeights()
    {
        Assert.Equal(TrainSeedModel(prefetch: false), TrainSeedModel(prefetch: true));
    }
}
