using System.CommandLine;
using Crnn.Engine;
using Crnn.Engine.Export;

namespace Crnn.Cli;

/// <summary><c>crnn export</c>: writes a checkpoint as an ONNX model that ONNX Runtime (or any ONNX consumer) runs.</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "checkpoint folder (model.json + model.safetensors)", Required = true };
        var output = new Option<string?>("--output") { Description = "ONNX file to write (default: model.onnx in the checkpoint folder)" };
        var command = new Command("export", "Write the model as ONNX (opset 14): input \"image\" [N,3,32,W], output \"logits\" [N,W/4,C], dictionary in the metadata.");
        command.Options.Add(model);
        command.Options.Add(output);
        command.SetAction(p => UserError.Guard(() =>
        {
            string folder = p.GetValue(model)!;
            return Run(folder, p.GetValue(output) ?? Path.Combine(folder, "model.onnx"), Console.Out);
        }));
        return command;
    }

    public static int Run(string modelFolder, string outputPath, TextWriter log)
    {
        var checkpoint = Checkpoint.Load(modelFolder);
        string? folder = Path.GetDirectoryName(Path.GetFullPath(outputPath));
        if (Directory.Exists(outputPath)) throw new ArgumentException($"--output '{outputPath}' is a folder; name the .onnx file to write");
        if (folder is null || !Directory.Exists(folder)) throw new ArgumentException($"--output '{outputPath}': folder '{folder}' does not exist");
        var onnx = OnnxExport.Build(checkpoint);
        try
        {
            OnnxExport.Write(onnx, outputPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The output path is the user's choice: report it as a bad option, in one line.
            throw new ArgumentException($"cannot write --output '{outputPath}': {e.Message}", e);
        }
        var c = checkpoint.Config;
        // A dynamic-width model (PaddleOCR's) takes any width W and gives T = W/4 steps.
        var (width, steps) = c.DynamicWidth ? (OnnxExport.WidthDimension, OnnxExport.StepsDimension) : ($"{c.Width}", $"{c.TimeSteps}");
        log.WriteLine($"wrote {outputPath} ({new FileInfo(outputPath).Length:N0} bytes): ONNX opset {OnnxExport.Opset}, " +
                      $"input \"{OnnxExport.InputName}\" [N,3,{c.Height},{width}] {c.ChannelOrder.ToString().ToUpperInvariant()}, " +
                      $"output \"{OnnxExport.OutputName}\" [N,{steps},{c.Classes}], step {checkpoint.Step}");
        return 0;
    }
}
