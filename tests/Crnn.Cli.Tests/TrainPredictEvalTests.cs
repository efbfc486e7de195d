using System.Text.Json;
using Crnn.Engine;
using Crnn.Engine.Training;
using Xunit;

namespace Crnn.Cli.Tests;

/// <summary>The verbs end to end on a tiny run: files written, output formats, and user errors.</summary>
public class TrainPredictEvalTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    string LabelFile(int count)
    {
        using var words = new SyntheticWords(CharDictionary.Default, seed: 3);
        var lines = Enumerable.Range(0, count).Select(i => $"w{i}.png\t{words.SavePng(i, Path.Combine(_folder, $"w{i}.png"))}");
        string path = Path.Combine(_folder, "labels.txt");
        File.WriteAllLines(path, lines);
        return path;
    }

    static TrainCommand.Settings Settings(string output, string[]? train = null, int steps = 2) =>
        new(train ?? [], null, null, false, "cpu", output, null, ValCount: 2,
            new TrainOptions { Steps = steps, BatchSize = 2, LogEvery = 1, ValidateEvery = 0 });

    [Fact]
    public void TrainWritesCheckpointAndMetricsThenPredictAndEvalReadIt()
    {
        string labels = LabelFile(3);
        string run = Path.Combine(_folder, "run");
        var log = new StringWriter();
        Assert.Equal(0, TrainCommand.Run(Settings(run, [labels]), log));
        Assert.Contains("1,451,787 parameters", log.ToString());
        foreach (var file in new[] { "model.safetensors", "optimizer.safetensors", "model.json", "metrics.jsonl" })
            Assert.True(File.Exists(Path.Combine(run, file)), file);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(2, lines.Length);
        using (var json = JsonDocument.Parse(lines[^1]))
        {
            Assert.Equal(2, json.RootElement.GetProperty("step").GetInt32());
            foreach (var key in new[] { "loss", "lr", "images_per_sec", "val_accuracy" })
                Assert.True(json.RootElement.TryGetProperty(key, out _), key);
        }

        var predicted = new StringWriter();
        string image = Path.Combine(_folder, "w0.png");
        Assert.Equal(0, PredictCommand.Predict(run, [image], "cpu", predicted));
        var fields = predicted.ToString().TrimEnd('\n').Split('\t');
        Assert.Equal(3, fields.Length);
        Assert.Equal(image, fields[0]);
        // What the command prints is what the engine reads from the same checkpoint and image.
        var checkpoint = Checkpoint.Load(run);
        using (var device = Kernels.Device.Open("cpu"))
        using (var model = new CrnnModel(device, checkpoint.Config))
        {
            model.Load(checkpoint.Parameters, checkpoint.Buffers);
            var read = new Recognizer(model, checkpoint.Dictionary).Read(Preprocess.LoadFiles([image]), 1)[0];
            Assert.Equal(read.Text, fields[1]);
            Assert.Equal(read.Confidence.ToString("F4"), fields[2]);
        }

        var evaluated = new StringWriter();
        Assert.Equal(0, PredictCommand.Eval(run, [labels], "cpu", evaluated, new PredictCommand.EvalOptions(Json: true)));
        using var result = JsonDocument.Parse(evaluated.ToString());
        Assert.Equal(3, result.RootElement.GetProperty("count").GetInt32());
        Assert.InRange(result.RootElement.GetProperty("accuracy").GetDouble(), 0, 1);
        Assert.InRange(result.RootElement.GetProperty("norm_edit_distance").GetDouble(), 0, 1);
        Assert.Equal(0, result.RootElement.GetProperty("skipped").GetInt32());
        Assert.Equal(1, result.RootElement.GetProperty("datasets").GetArrayLength());
    }

    [Fact]
    public void SyntheticRunEndsByReadingSamplesBack()
    {
        string run = Path.Combine(_folder, "synthetic");
        var log = new StringWriter();
        Assert.Equal(0, TrainCommand.Run(Settings(run, steps: 1), log));
        Assert.Contains("reading 6 unseen synthetic words", log.ToString());
        Assert.Equal(6, Directory.GetFiles(Path.Combine(run, "samples"), "*.png").Length);
    }

    [Theory]
    [InlineData("train --steps 0", "--steps must be at least 1")]
    [InlineData("train --train /nonexistent/labels.txt --steps 1", "dataset not found: /nonexistent/labels.txt")]
    [InlineData("predict --model /nonexistent x.png", "")]
    [InlineData("train --device tpu --steps 1", "unknown device 'tpu'")]
    public void UserErrorsAreOneLineAndExitCode2(string args, string message)
    {
        Cli.AssertUserError(Cli.Run(args), message);
    }
}
