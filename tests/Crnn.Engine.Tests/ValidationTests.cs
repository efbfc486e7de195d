using Crnn.Engine.Data;
using Crnn.Engine.Training;
using Xunit;

namespace Crnn.Engine.Tests;

/// <summary>Validation during training: it runs on the training network's buffers (no device memory of its
/// own), reads what a separate recognizer reads, and streams a dataset of any size.</summary>
public sealed class ValidationTests : IDisposable
{
    static readonly Lazy<Kernels.Device> Device = new(() => Kernels.Device.Open(Environment.GetEnvironmentVariable("CRNN_TEST_DEVICE") is { Length: > 0 } s ? s : "cpu"));
    static readonly ModelConfig Small = new(Scale: 0.25, Hidden: 32);

    readonly string _folder = Directory.CreateTempSubdirectory("crnn-validation-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void ValidatingAllocatesNoDeviceMemory()
    {
        using var model = new CrnnModel(Device.Value, Small);
        model.Initialize(seed: 5);
        using var source = new SyntheticSource(CharDictionary.Default, seed: 6);
        // 3 images at batch 4 (and 5, more than a batch): once a batch size of their own, a second network.
        foreach (int count in new[] { 3, 5 })
        {
            using var validation = ValidationSet.Synthetic(CharDictionary.Default, count, seed: 99);
            var options = new TrainOptions { Steps = 2, BatchSize = 4, LogEvery = 1, ValidateEvery = 1 };
            using var trainer = new Trainer(model, CharDictionary.Default, source, options, Path.Combine(_folder, $"run{count}"), validation);
            var allocated = new List<long>();
            trainer.Validating += _ => allocated.Add(Device.Value.AllocatedBytes);
            trainer.Logged += r =>
            {
                Assert.NotNull(r.ValAccuracy);
                allocated.Add(Device.Value.AllocatedBytes);
            };
            trainer.Run();
            Assert.Equal(4, allocated.Count); // before and after each of the two validations (the step between them too)
            Assert.All(allocated, bytes => Assert.Equal(allocated[0], bytes));
        }
    }

    [Fact]
    public void ReadingThroughATrainingBatchBufferGivesWhatASeparateRecognizerGives()
    {
        using var model = new CrnnModel(Device.Value, Small);
        model.Initialize(seed: 7);
        using var validation = ValidationSet.Synthetic(CharDictionary.Default, 7, seed: 99);
        var images = new float[7 * validation.ImageSize];
        validation.Read(0, 7, images);

        var alone = new Recognizer(model, CharDictionary.Default, 7).Read(images, 7);
        using var batch = Device.Value.Allocate(3, validation.ImageSize); // 3 chunks, the last one padded
        var shared = new Recognizer(model, CharDictionary.Default, batch).Read(images, 7);
        Assert.Equal(alone, shared);
        Assert.Contains(alone, p => p.Text.Length > 0); // the untrained model reads something, so the comparison says something

        var metrics = new Recognizer(model, CharDictionary.Default, batch).Evaluate(validation);
        var expected = new Recognizer(model, CharDictionary.Default, 7).Evaluate(images, validation.Texts);
        Assert.Equal((expected.Count, expected.Accuracy, expected.NormEditDistance), (metrics.Count, metrics.Accuracy, metrics.NormEditDistance));
    }

    /// <summary>Five PNGs with a label file; the third is not an image.</summary>
    string WriteLabelFile()
    {
        using var words = new SyntheticWords(CharDictionary.Default, seed: 31);
        var lines = new List<string>();
        for (int i = 0; i < 5; i++)
        {
            string name = $"img{i}.png", path = Path.Combine(_folder, name);
            string text = words.SavePng(i, path);
            if (i == 2) File.WriteAllText(path, "not a png");
            lines.Add($"{name}\t{text}");
        }
        string labels = Path.Combine(_folder, "labels.txt");
        File.WriteAllLines(labels, lines);
        return labels;
    }

    [Fact]
    public void AStreamedDatasetIsDecodedAtEachReadAndLeavesOutUnreadableImages()
    {
        string labels = WriteLabelFile();
        var skipped = new List<string>();
        using var set = ValidationSet.Stream(Datasets.Open(labels, CharDictionary.Default, 25, LabelCase.Auto), strict: false,
            (sample, error) => skipped.Add($"{sample}: {error}"));
        Assert.Single(skipped);
        Assert.Contains("labels.txt:3", skipped[0]);
        Assert.Equal(4, set.Count);

        var files = File.ReadAllLines(labels).Where((_, i) => i != 2).Select(l => l.Split('\t')).ToList();
        Assert.Equal(files.Select(f => f[1]), set.Texts);
        var read = new float[3 * ImageDecoding.Size];
        set.Read(1, 3, read); // images 1, 3, 4 of the file
        for (int k = 0; k < 3; k++)
        {
            var expected = new float[ImageDecoding.Size];
            ImageDecoding.DecodeFile(Path.Combine(_folder, files[1 + k][0]), expected);
            Assert.Equal(expected, read.AsSpan(k * ImageDecoding.Size, ImageDecoding.Size).ToArray());
        }

        var e = Assert.Throws<InvalidDataException>(() => ValidationSet.Stream(Datasets.Open(labels, CharDictionary.Default, 25, LabelCase.Auto), strict: true, (_, _) => { }));
        Assert.Contains("labels.txt:3", e.Message);
    }
}
