using Crnn.Engine.Data;
using Crnn.Engine.Training;
using Crnn.Kernels;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.Engine.Tests;

/// <summary>Training end to end on the CPU accelerator: it learns, it is deterministic, and it resumes exactly.</summary>
public class TrainerTests(ITestOutputHelper output) : IDisposable
{
    static readonly Lazy<Kernels.Device> Device = new(() => Kernels.Device.Open(Environment.GetEnvironmentVariable("CRNN_TEST_DEVICE") is { Length: > 0 } s ? s : "cpu"));

    /// <summary>A narrower model than the seed (same layers, fewer channels) keeps these tests to seconds.</summary>
    static readonly ModelConfig Small = new(Scale: 0.25, Hidden: 32);

    readonly string _folder = Directory.CreateTempSubdirectory("crnn-trainer-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Writes <paramref name="count"/> synthetic words as PNGs with a PaddleOCR label file.</summary>
    string WriteLabelFile(int count, int seed)
    {
        using var words = new SyntheticWords(CharDictionary.Default, seed);
        var lines = new List<string>();
        for (int i = 0; i < count; i++)
        {
            string name = $"img{i}.png";
            string text = words.SavePng(i, Path.Combine(_folder, name));
            lines.Add($"{name}\t{text}");
        }
        string path = Path.Combine(_folder, "labels.txt");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void OverfitsEightImagesFromALabelFile()
    {
        var samples = LabelFile.Read(WriteLabelFile(8, seed: 22), CharDictionary.Default, new ModelConfig().TimeSteps).Samples;
        // The seed model: it memorizes faster than the narrow one (a one-symbol word, "g", sits longest on the
        // all-blank plateau; seed 22 has none among its eight), and all eight words are decoded after a few hundred steps.
        using var model = new CrnnModel(Device.Value, new ModelConfig());
        model.Initialize(seed: 1);
        using var source = new LabelFileSource(samples, seed: 1);
        var options = new TrainOptions { Steps = 300, BatchSize = 8, LearningRate = 2e-3f, WarmupSteps = 20, ClipNorm = 5f, LogEvery = 50, ValidateEvery = 0 };
        using var trainer = new Trainer(model, CharDictionary.Default, source, options, Path.Combine(_folder, "run"), validation: null);
        trainer.Logged += r => output.WriteLine($"step {r.Step} loss {r.Loss:F4} {r.ImagesPerSecond:F1} img/s");
        trainer.Run();

        var images = Preprocess.LoadFiles(samples.Select(s => s.Path).ToList());
        var predictions = new Recognizer(model, CharDictionary.Default).Read(images, 8);
        for (int i = 0; i < 8; i++) output.WriteLine($"{samples[i].Text} -> {predictions[i].Text} ({predictions[i].Confidence:F3})");
        Assert.Equal(samples.Select(s => s.Text), predictions.Select(p => p.Text));
    }

    float[] Train(int steps, string output, Checkpoint? resumeFrom = null, bool saveAtEnd = false)
    {
        using var model = new CrnnModel(Device.Value, Small);
        model.Initialize(seed: 5);
        using var source = new SyntheticSource(CharDictionary.Default, seed: 6);
        var options = new TrainOptions { Steps = steps, BatchSize = 4, LogEvery = 1, ValidateEvery = 0, ClipNorm = 5f, WarmupSteps = 2, DecayFraction = 1 };
        // The schedule is that of the whole run (4 steps) whether it runs straight or in two halves.
        options = options with { Steps = 4 };
        using var trainer = new Trainer(model, CharDictionary.Default, source, options, output, validation: null);
        if (resumeFrom != null) trainer.Resume(resumeFrom);
        while (trainer.Step < steps) trainer.TrainStep();
        if (saveAtEnd) trainer.SaveCheckpoint();
        return model.Save().Parameters.Concat(model.Save().Buffers).ToArray();
    }

    [Fact]
    public void SameSeedGivesBitIdenticalWeights()
    {
        var a = Train(3, Path.Combine(_folder, "a"));
        var b = Train(3, Path.Combine(_folder, "b"));
        Assert.Equal(a, b);
    }

    [Fact]
    public void ResumingFromACheckpointContinuesBitIdentically()
    {
        var straight = Train(4, Path.Combine(_folder, "straight"));
        string half = Path.Combine(_folder, "half");
        Train(2, half, saveAtEnd: true);
        var checkpoint = Checkpoint.Load(half);
        Assert.Equal(2, checkpoint.Step);
        var resumed = Train(4, Path.Combine(_folder, "resumed"), resumeFrom: checkpoint);
        Assert.Equal(straight, resumed);
    }
}
