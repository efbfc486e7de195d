using System.Globalization;
using System.Text.Json;
using Crnn.Engine.Data;
using Crnn.Engine.Training;
using Crnn.Kernels;
using Xunit;

namespace Crnn.Engine.Tests;

/// <summary>What a run does when things go wrong or are interrupted, and the files it leaves: non-finite
/// steps, cancellation, failed checkpoint writes, device memory, best/, metrics.csv and metrics.png.</summary>
public sealed class TrainerRobustnessTests : IDisposable
{
    static readonly Lazy<Kernels.Device> Device = new(() => Kernels.Device.Open(Environment.GetEnvironmentVariable("CRNN_TEST_DEVICE") is { Length: > 0 } s ? s : "cpu"));
    static readonly ModelConfig Small = new(Scale: 0.25, Hidden: 32);
    const int Batch = 2;

    readonly string _folder = Directory.CreateTempSubdirectory("crnn-robust-").FullName;
    readonly List<IDisposable> _owned = [];

    public void Dispose()
    {
        foreach (var o in Enumerable.Reverse(_owned)) o.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    string Output(string name) => Path.Combine(_folder, name);

    /// <summary>A trainer of the narrow model on synthetic words; <paramref name="bad"/> batches (by index in
    /// the stream) are all-NaN images, or skipped over when <paramref name="dropBad"/>.</summary>
    Trainer MakeTrainer(string output, TrainOptions options, Func<long, bool>? bad = null, bool dropBad = false, ValidationSet? validation = null)
    {
        var model = new CrnnModel(Device.Value, Small);
        model.Initialize(seed: 5);
        var source = new BadBatches(new SyntheticSource(CharDictionary.Default, seed: 6), bad ?? (_ => false), dropBad);
        var trainer = new Trainer(model, CharDictionary.Default, source, options with { BatchSize = Batch }, output, validation);
        _owned.AddRange([model, source, trainer]);
        return trainer;
    }

    static TrainOptions Options(int steps, int validateEvery = 0) =>
        new() { Steps = steps, LogEvery = 1, ValidateEvery = validateEvery, WarmupSteps = 1, ClipNorm = 5f };

    static int[] Bits(float[] values) => [.. values.Select(BitConverter.SingleToInt32Bits)];

    static int[] State(Trainer trainer, string folder)
    {
        trainer.SaveCheckpoint();
        var c = Checkpoint.Load(folder);
        return Bits([.. c.Parameters, .. c.Buffers, .. c.AdamM!, .. c.AdamV!]);
    }

    [Fact]
    public void NonFiniteBatchIsSkippedWithoutChangingWeightsStatisticsOrMoments()
    {
        string run = Output("skip");
        var trainer = MakeTrainer(run, Options(4), bad: i => i == 1);
        trainer.TrainStep();
        var before = State(trainer, run);

        trainer.TrainStep(); // batch 1: NaN images
        Assert.True(trainer.LastStepSkipped);
        Assert.Equal(1, trainer.Step);
        Assert.Equal(1, trainer.SkippedSteps);
        Assert.Equal(before, State(trainer, run)); // BN running statistics restored, no Adam update

        trainer.TrainStep();
        Assert.False(trainer.LastStepSkipped);
        Assert.Equal(0, trainer.ConsecutiveSkipped);
        Assert.Equal(2, trainer.Step);
    }

    [Fact]
    public void SkippingANonFiniteBatchEqualsNeverSeeingIt()
    {
        // Three applied steps around a NaN batch give the weights of a run whose stream simply lacks that batch:
        // nothing of the bad step (statistics, moments, Adam's step count) survives it.
        var skipped = MakeTrainer(Output("nan"), Options(3), bad: i => i == 1);
        var clean = MakeTrainer(Output("clean"), Options(3), bad: i => i == 1, dropBad: true);
        skipped.Run();
        clean.Run();
        Assert.Equal(1, skipped.SkippedSteps);
        Assert.Equal(0, clean.SkippedSteps);
        Assert.Equal(State(clean, Output("clean")), State(skipped, Output("nan")));
    }

    [Fact]
    public void ConsecutiveBadStepsStopTrainingAndKeepTheLastCheckpoint()
    {
        string run = Output("diverged");
        var trainer = MakeTrainer(run, Options(10, validateEvery: 2) with { MaxBadSteps = 3 }, bad: i => i >= 3);
        var e = Assert.Throws<TrainingException>(() => trainer.Run());
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("3 steps in a row after step 3", e.Message);
        Assert.Contains("checkpoint of step 2", e.Message);
        Assert.Equal(3, trainer.SkippedSteps);
        Assert.Equal(2, Checkpoint.Load(run).Step);
        Assert.Empty(Directory.GetFiles(run, "*.tmp"));
    }

    [Fact]
    public void CancellingStopsAfterTheStepSavesAndResumesBitIdentically()
    {
        var straight = MakeTrainer(Output("straight"), Options(4));
        straight.Run();

        string run = Output("cancelled");
        using var cancel = new CancellationTokenSource();
        var first = MakeTrainer(run, Options(4));
        first.Stepped += p => { if (p.Step == 2) cancel.Cancel(); };
        // The save after a cancel is not itself cancellable: a second request during it changes nothing.
        var create = first.CreateCheckpointFile;
        first.CreateCheckpointFile = path => { cancel.Cancel(); return create(path); };
        first.Run(cancel.Token);
        Assert.Equal(2, first.Step);
        var saved = Checkpoint.Load(run);
        Assert.Equal(2, saved.Step);

        var resumed = MakeTrainer(run, Options(4));
        resumed.Resume(saved);
        resumed.Run();
        Assert.Equal(State(straight, Output("straight")), State(resumed, run));
    }

    [Fact]
    public void DiskFullDuringACheckpointLeavesThePreviousOneAndNoTempFiles()
    {
        string run = Output("full");
        var trainer = MakeTrainer(run, Options(3, validateEvery: 1));
        int saves = 0;
        // From the second save on, every temp file is a link to /dev/full: writes fail with ENOSPC, like a full disk.
        trainer.CreateCheckpointFile = path =>
        {
            if (Path.GetFileName(path).StartsWith("." + Checkpoint.ModelFile)) saves++;
            if (saves < 2) return new FileStream(path, FileMode.CreateNew, FileAccess.Write);
            File.CreateSymbolicLink(path, "/dev/full");
            return new FileStream(path, FileMode.Open, FileAccess.Write);
        };
        var e = Assert.Throws<CheckpointException>(() => trainer.Run());
        Assert.Contains("No space left on device", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(1, Checkpoint.Load(run).Step);
        Assert.Empty(Directory.GetFiles(run, "*.tmp", SearchOption.AllDirectories).Concat(Directory.GetFiles(run, ".*")));
    }

    [Fact]
    public void UnwritableOutputFolderFailsBeforeTheFirstStep()
    {
        string file = Output("a-file");
        File.WriteAllText(file, "");
        // A file where a folder should be fails even for root, who ignores permissions.
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.CheckWritable(Path.Combine(file, "run")));
        Assert.Contains("not writable", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        string readOnly = Output("read-only");
        Directory.CreateDirectory(readOnly);
        if (!OperatingSystem.IsWindows() && !Environment.IsPrivilegedProcess) // root writes anyway: then a refusing stream stands in
        {
            File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            Assert.Throws<CheckpointException>(() => Checkpoint.CheckWritable(readOnly));
            File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        else
        {
            Stream Denied(string path) => throw new UnauthorizedAccessException($"Access to the path '{path}' is denied.");
            Assert.Contains("denied", Assert.Throws<CheckpointException>(() => Checkpoint.CheckWritable(readOnly, Denied)).Message);
        }
        Assert.Empty(Directory.GetFileSystemEntries(readOnly)); // no probe file left

        var trainer = MakeTrainer(Path.Combine(file, "run"), Options(2));
        Assert.Throws<CheckpointException>(() => trainer.Run());
        Assert.Equal(0, trainer.Step);
    }

    [Fact]
    public void AFolderTurnedReadOnlyKeepsThePreviousCheckpointAndNoTempFiles()
    {
        string run = Output("read-only-save");
        var trainer = MakeTrainer(run, Options(2));
        trainer.TrainStep();
        trainer.SaveCheckpoint();
        var before = Directory.GetFiles(run).ToDictionary(f => f, File.ReadAllBytes);
        trainer.TrainStep();
        bool chmod = !OperatingSystem.IsWindows() && !Environment.IsPrivilegedProcess;
        if (!OperatingSystem.IsWindows() && chmod)
            File.SetUnixFileMode(run, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        else // root ignores the mode: a temp file is created, then writing it is refused
            trainer.CreateCheckpointFile = path =>
            {
                File.WriteAllText(path, "partial");
                throw new UnauthorizedAccessException($"Access to the path '{path}' is denied.");
            };
        try
        {
            var e = Assert.Throws<CheckpointException>(trainer.SaveCheckpoint);
            Assert.Contains("denied", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        finally
        {
            if (!OperatingSystem.IsWindows() && chmod)
                File.SetUnixFileMode(run, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(run).Order()); // nothing left behind
        foreach (var (path, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(path));
        Assert.Equal(1, Checkpoint.Load(run).Step);
    }

    [Fact]
    public void ABatchTooLargeForTheDeviceNamesTheSizeAndTheBatch()
    {
        var model = new CrnnModel(Device.Value, Small);
        _owned.Add(model);
        using var source = new SyntheticSource(CharDictionary.Default, seed: 1);
        // 300 000 images of 3x32x100 floats are 2.88e9 elements (10 987 MiB): over the 2^31-element tensor limit,
        // refused before anything is allocated, so the test costs no memory.
        var e = Assert.Throws<DeviceMemoryException>(() =>
            new Trainer(model, CharDictionary.Default, source, new TrainOptions { BatchSize = 300_000 }, Output("oom"), null));
        Assert.Equal("cannot allocate 10987 MiB on the device: one tensor may hold at most 2^31 elements (batch 300000); try a smaller --batch-size", e.Message);
    }

    [Fact]
    public void BestKeepsTheHighestAccuracyAndSurvivesAResume()
    {
        // The untrained model reads none of these words: every validation scores 0, a tie, which must not
        // replace best/ (first validation only) nor a better best/ already on disk.
        var validation = ValidationSet.Synthetic(CharDictionary.Default, 2, seed: 99);
        string run = Output("best");
        var trainer = MakeTrainer(run, Options(2, validateEvery: 1), validation: validation);
        trainer.Run();
        var best = Checkpoint.Load(Path.Combine(run, Trainer.BestFolder));
        Assert.Equal(1, best.Step);
        Assert.Equal(0, best.Metrics["val_accuracy"]);
        var last = Checkpoint.Load(run);
        Assert.Equal(2, last.Step);
        Assert.Equal(0, last.Metrics["best_val_accuracy"]);
        Assert.Equal(1, last.Metrics["best_step"]);

        // A better best/ on disk (as if from a later save than the checkpoint resumed from) is kept.
        string bestFolder = Path.Combine(run, Trainer.BestFolder);
        var better = new Checkpoint
        {
            Config = best.Config, Dictionary = best.Dictionary, Parameters = best.Parameters, Buffers = best.Buffers,
            AdamM = best.AdamM, AdamV = best.AdamV, Step = 7, Metrics = new Dictionary<string, double> { ["val_accuracy"] = 0.9 },
        };
        better.Save(bestFolder);
        var bytes = Directory.GetFiles(bestFolder).ToDictionary(f => f, File.ReadAllBytes);
        var resumed = MakeTrainer(run, Options(4, validateEvery: 1), validation: validation);
        resumed.Resume(last);
        Assert.Equal(0.9, resumed.BestValAccuracy);
        resumed.Run();
        foreach (var (path, content) in bytes) Assert.Equal(content, File.ReadAllBytes(path));
        var final = Checkpoint.Load(run);
        Assert.Equal(0.9, final.Metrics["best_val_accuracy"]);
        Assert.Equal(7, final.Metrics["best_step"]);
    }

    [Fact]
    public void MetricsCsvMatchesJsonlKeepsOneHeaderOnResumeAndDropsStepsPastTheCheckpoint()
    {
        string run = Output("metrics");
        MakeTrainer(run, Options(2)).Run();
        // Steps logged after the last checkpoint (a crash) are trained again on resume: their rows must go.
        File.AppendAllLines(Path.Combine(run, MetricsLog.CsvFile), ["3,0,99,0,1,0,,"]);
        File.AppendAllLines(Path.Combine(run, MetricsLog.JsonFile), ["{\"step\":3,\"loss\":99}"]);
        var resumed = MakeTrainer(run, Options(4));
        resumed.Resume(Checkpoint.Load(run));
        resumed.Run();

        var csv = File.ReadAllLines(Path.Combine(run, MetricsLog.CsvFile));
        Assert.Equal(string.Join(',', MetricsLog.Columns), csv[0]);
        Assert.Equal(5, csv.Length);
        var json = File.ReadAllLines(Path.Combine(run, MetricsLog.JsonFile));
        Assert.Equal(4, json.Length);
        for (int i = 0; i < 4; i++)
        {
            var fields = csv[i + 1].Split(',');
            using var row = JsonDocument.Parse(json[i]);
            Assert.Equal(i + 1, row.RootElement.GetProperty("step").GetInt64());
            for (int c = 0; c < MetricsLog.Columns.Length; c++)
            {
                var value = row.RootElement.GetProperty(MetricsLog.Columns[c]);
                if (value.ValueKind == JsonValueKind.Null) Assert.Equal("", fields[c]);
                else Assert.Equal(value.GetDouble(), double.Parse(fields[c], CultureInfo.InvariantCulture), 6);
            }
            Assert.NotEqual(99, row.RootElement.GetProperty("loss").GetDouble());
        }

        // The plot is a real PNG of the requested size.
        using var png = SkiaSharp.SKBitmap.Decode(Path.Combine(run, MetricsLog.PlotFile));
        Assert.Equal((900, 500), (png.Width, png.Height));
    }

    /// <summary>Wraps a source: batches whose index (position / batch) is bad come out as NaN images, or are
    /// passed over (the samples drawn but never seen) when <paramref name="drop"/>.</summary>
    sealed class BadBatches(IBatchSource inner, Func<long, bool> bad, bool drop) : IBatchSource
    {
        public int Seed => inner.Seed;
        public long Position { get => inner.Position; set => inner.Position = value; }
        public long EpochSize => inner.EpochSize;

        public void NextBatch(float[] images, string[] texts, int[][] labels)
        {
            while (drop && bad(inner.Position / texts.Length)) inner.Position += texts.Length;
            bool isBad = bad(inner.Position / texts.Length);
            inner.NextBatch(images, texts, labels);
            if (isBad && !drop) Array.Fill(images, float.NaN);
        }

        public void Dispose() => inner.Dispose();
    }
}
