using System.CommandLine;
using Crnn.Engine;
using Crnn.Engine.Export;

namespace Crnn.Cli;

/// <summary><c>crnn import</c>: a PaddleOCR recognizer exported to ONNX → a checkpoint folder of this engine.</summary>
public static class ImportCommand
{
    public static Command Create()
    {
        var onnx = new Option<string>("--onnx") { Description = "PaddleOCR MobileNetV3 CRNN recognizer as ONNX (paddle2onnx / RapidOCR export)", Required = true };
        var dict = new Option<string>("--dict") { Description = "the model's dictionary file (PaddleOCR's character_dict_path)", Required = true };
        var space = new Option<bool>("--use-space-char") { Description = "append \" \" to the dictionary, as the model's use_space_char did" };
        var output = new Option<string>("--output") { Description = "checkpoint folder to write", Required = true };
        var command = new Command("import", "Convert a PaddleOCR rec model (ONNX) into a checkpoint folder for predict, eval, train --init and export.");
        foreach (var o in new Option[] { onnx, dict, space, output }) command.Options.Add(o);
        command.SetAction(p => UserError.Guard(() => Run(p.GetValue(onnx)!, p.GetValue(dict)!, p.GetValue(space), p.GetValue(output)!, Console.Out)));
        return command;
    }

    public static int Run(string onnxPath, string dictPath, bool useSpaceChar, string outputFolder, TextWriter log)
    {
        if (!File.Exists(onnxPath)) throw new FileNotFoundException($"--onnx file not found: {onnxPath}");
        var dictionary = CharDictionary.Load(dictPath, useSpaceChar);
        var checkpoint = PaddleImport.Import(onnxPath, dictionary);
        if (File.Exists(Path.Combine(outputFolder, Checkpoint.MetadataFile)))
            throw new ArgumentException($"--output '{outputFolder}' already holds a checkpoint; choose an empty folder");
        checkpoint.Save(outputFolder);
        log.WriteLine($"imported {Path.GetFileName(onnxPath)}: {checkpoint.Config.Describe()}, {checkpoint.Config.ParameterCount:N0} parameters");
        log.WriteLine($"wrote {outputFolder}");
        return 0;
    }
}
