using System.CommandLine;
using System.Text.Json;
using Crnn.Engine;
using Crnn.Engine.Data;
using Crnn.Engine.Training;
using Crnn.Kernels;

namespace Crnn.Cli;

/// <summary><c>crnn predict</c> and <c>crnn eval</c>: read text with a trained model.</summary>
public static class PredictCommand
{
    public static Command CreatePredict()
    {
        var model = new Option<string>("--model") { Description = "checkpoint folder (model.json + model.safetensors)", Required = true };
        var device = new Option<string?>("--device") { Description = "cpu, cuda or opencl[:index]" };
        var images = new Argument<string[]>("images") { Description = "image files", Arity = ArgumentArity.OneOrMore };
        var command = new Command("predict", "Print path<TAB>text<TAB>confidence for each image.");
        command.Options.Add(model);
        command.Options.Add(device);
        command.Arguments.Add(images);
        command.SetAction(p => UserError.Guard(() => Predict(p.GetValue(model)!, p.GetValue(images)!, p.GetValue(device), Console.Out)));
        return command;
    }

    public static Command CreateEval()
    {
        var model = new Option<string>("--model") { Description = "checkpoint folder", Required = true };
        var data = new Option<string>("--data") { Description = "PaddleOCR label file (image_path<TAB>text)", Required = true };
        var device = new Option<string?>("--device") { Description = "cpu, cuda or opencl[:index]" };
        var command = new Command("eval", "Print {count, accuracy, norm_edit_distance} of the model on a label file as JSON.");
        command.Options.Add(model);
        command.Options.Add(data);
        command.Options.Add(device);
        command.SetAction(p => UserError.Guard(() => Eval(p.GetValue(model)!, p.GetValue(data)!, p.GetValue(device), Console.Out)));
        return command;
    }

    public static int Predict(string modelFolder, string[] paths, string? deviceSpec, TextWriter output)
    {
        var checkpoint = Checkpoint.Load(modelFolder);
        var images = Preprocess.LoadFiles(paths);
        using var device = Device.Open(deviceSpec);
        using var model = Load(device, checkpoint);
        var predictions = new Recognizer(model, checkpoint.Dictionary).Read(images, paths.Length);
        for (int i = 0; i < paths.Length; i++) output.WriteLine($"{paths[i]}\t{predictions[i].Text}\t{predictions[i].Confidence:F4}");
        return 0;
    }

    public static int Eval(string modelFolder, string labels, string? deviceSpec, TextWriter output)
    {
        var checkpoint = Checkpoint.Load(modelFolder);
        var result = LabelFile.Read(labels, checkpoint.Dictionary, checkpoint.Config.TimeSteps);
        foreach (var skip in result.Skipped) Console.Error.WriteLine($"skipped {skip}");
        var images = Preprocess.LoadFiles(result.Samples.Select(s => s.Path).ToList());
        using var device = Device.Open(deviceSpec);
        using var model = Load(device, checkpoint);
        var metrics = new Recognizer(model, checkpoint.Dictionary).Evaluate(images, result.Samples.Select(s => s.Text).ToList());
        output.WriteLine(JsonSerializer.Serialize(new { count = metrics.Count, accuracy = metrics.Accuracy, norm_edit_distance = metrics.NormEditDistance }));
        return 0;
    }

    static CrnnModel Load(Device device, Checkpoint checkpoint)
    {
        var model = new CrnnModel(device, checkpoint.Config);
        model.Load(checkpoint.Parameters, checkpoint.Buffers);
        return model;
    }
}
