using Crnn.Engine;
using Crnn.Engine.Export;
using Onnx;
using Xunit;

namespace Crnn.Cli.Tests;

/// <summary><c>crnn export</c>: writes a readable ONNX file next to nothing else, and fails in one line.</summary>
public class ExportCommandTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-export-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>A checkpoint of a narrow model with fresh weights: export needs no training.</summary>
    string SaveCheckpoint()
    {
        var config = new ModelConfig(Scale: 0.25, Hidden: 16);
        var (parameters, buffers) = new ParameterLayout(config).Initialize(seed: 2);
        string folder = Path.Combine(_folder, "run");
        new Checkpoint { Config = config, Dictionary = CharDictionary.Default, Parameters = parameters, Buffers = buffers, Step = 7 }.Save(folder);
        return folder;
    }

    [Fact]
    public void WritesTheModelAtomically()
    {
        string run = SaveCheckpoint();
        string path = Path.Combine(_folder, "out", "crnn.onnx");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "an older export"); // replaced whole
        var log = new StringWriter();
        Assert.Equal(0, ExportCommand.Run(run, path, log));
        Assert.Contains("input \"image\" [N,3,32,100] RGB, output \"logits\" [N,25,37]", log.ToString());
        Assert.Equal(["crnn.onnx"], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName)); // no temp file left

        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.Equal("crnn", model.ProducerName);
        Assert.Equal("logits", Assert.Single(model.Graph.Output).Name);
        Assert.Contains(model.MetadataProps, p => p.Key == OnnxExport.DictionaryKey && p.Value.Contains("\"z\""));
    }

    [Fact]
    public void DefaultOutputIsModelOnnxInTheCheckpointFolder()
    {
        string run = SaveCheckpoint();
        var (code, _, error) = Cli.Run($"export --model {run}");
        Assert.Equal("", error);
        Assert.Equal(0, code);
        Assert.True(File.Exists(Path.Combine(run, "model.onnx")));
    }

    [Theory]
    [InlineData("export --model /nonexistent/run --output OUT/x.onnx", "cannot load checkpoint '/nonexistent/run'")]
    [InlineData("export --model RUN --output OUT/missing/x.onnx", "does not exist")]
    [InlineData("export --model RUN --output OUT", "is a folder")]
    [InlineData("export --model RUN --output RUN/model.json/x.onnx", "does not exist")]
    public void UserErrorsAreOneLineAndExitCode2(string args, string message)
    {
        string run = SaveCheckpoint();
        Cli.AssertUserError(Cli.Run(args.Replace("RUN", run).Replace("OUT", _folder)), message);
        Assert.False(File.Exists(Path.Combine(_folder, "x.onnx")));
    }
}
