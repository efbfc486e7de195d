using System.Text.Json;
using Crnn.Engine.Data;
using Crnn.Engine.Export;
using Crnn.Engine.Training;
using Google.Protobuf;
using ILGPU.Runtime;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.Engine.Tests;

/// <summary>
/// The exported ONNX graph run by ONNX Runtime (an implementation independent of this project) against the
/// engine's evaluation-mode forward on the same weights: logits within 1e-4, plus the graph's declared shape,
/// opset, operators and metadata.
/// </summary>
public class OnnxExportTests(ITestOutputHelper output) : IDisposable
{
    static readonly Lazy<Kernels.Device> Device = new(() => Kernels.Device.Open(Environment.GetEnvironmentVariable("CRNN_TEST_DEVICE") is { Length: > 0 } s ? s : "cpu"));

    const float Tolerance = 1e-4f;

    static readonly HashSet<string> StandardOps =
    [
        "Conv", "Relu", "HardSigmoid", "HardSwish", "GlobalAveragePool", "Mul", "Add", "MaxPool",
        "Squeeze", "Transpose", "Reshape", "LSTM", "MatMul",
    ];

    readonly string _folder = Directory.CreateTempSubdirectory("crnn-onnx-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Seed weights with BatchNorm running statistics, γ, β and SE biases far from their initial
    /// 0/1 values, so folding BatchNorm into the convolutions and every bias is exercised.</summary>
    static (float[] Parameters, float[] Buffers) NonTrivialWeights(ParameterLayout layout, int seed)
    {
        var (parameters, buffers) = layout.Initialize(seed);
        var rng = new Random(seed + 1);
        float Uniform(double lo, double hi) => (float)(lo + (hi - lo) * rng.NextDouble());
        foreach (var b in layout.Buffers)
        {
            bool variance = b.Name.EndsWith("running_var");
            for (int i = 0; i < b.Length; i++) buffers[b.Offset + i] = variance ? Uniform(0.3, 2.0) : Uniform(-0.3, 0.3);
        }
        foreach (var p in layout.Parameters.Where(p => p.Name.Contains(".bn.") || p.Name.Contains(".se.") && p.Name.EndsWith(".bias")))
        {
            bool gamma = p.Name.EndsWith(".bn.weight");
            for (int i = 0; i < p.Length; i++) parameters[p.Offset + i] = gamma ? Uniform(0.5, 1.5) : Uniform(-0.2, 0.2);
        }
        return (parameters, buffers);
    }

    static float[] RandomImages(ModelConfig config, int batch, int seed)
    {
        var rng = new Random(seed);
        var images = new float[batch * 3 * config.Height * config.Width];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 2 - 1);
        return images;
    }

    static (float[] Images, string[] Texts) SyntheticImages(CharDictionary dictionary, int batch, int seed)
    {
        using var words = new SyntheticWords(dictionary, seed);
        var images = new float[batch * 3 * words.OutHeight * words.OutWidth];
        var texts = new string[batch];
        words.NextBatch(images, texts, new int[batch][]);
        return (images, texts);
    }

    static float[] EngineLogits(CrnnModel model, float[] images, int batch)
    {
        using var input = model.Device.Upload(images, images.Length);
        var logits = new float[batch * model.Steps * model.Config.Classes];
        model.Forward(input.View, batch, training: false).CopyToCPU(logits);
        return logits;
    }

    static float[] OrtLogits(InferenceSession session, ModelConfig config, float[] images, int batch)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(images, [batch, 3, config.Height, config.Width]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, [OnnxExport.InputName], [input], [OnnxExport.OutputName]);
        Assert.Equal([batch, config.TimeSteps, config.Classes], results[0].GetTensorTypeAndShape().Shape);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>Compares ORT's logits with the engine's on one batch; returns ORT's.</summary>
    float[] AssertSameLogits(CrnnModel model, InferenceSession session, float[] images, int batch, string what)
    {
        var engine = EngineLogits(model, images, batch);
        var ort = OrtLogits(session, model.Config, images, batch);
        Assert.Equal(engine.Length, ort.Length);
        float maxDiff = 0, maxAbs = 0;
        for (int i = 0; i < engine.Length; i++)
        {
            Assert.False(float.IsNaN(ort[i]), $"{what}: NaN at {i}");
            maxDiff = Math.Max(maxDiff, Math.Abs(engine[i] - ort[i]));
            maxAbs = Math.Max(maxAbs, Math.Abs(engine[i]));
        }
        output.WriteLine($"{what}: max |engine − ORT| = {maxDiff:E2} (max |logit| {maxAbs:F2})");
        Assert.True(maxAbs > 0.1f, $"{what}: logits are all near zero, the comparison would prove nothing");
        Assert.True(maxDiff <= Tolerance, $"{what}: max |engine − ORT| = {maxDiff:E3} > {Tolerance:E0}");
        return ort;
    }

    /// <summary>Greedy CTC decoding written for the test: arg-max per step, collapse repeats, drop the blank.</summary>
    static string GreedyDecode(float[] logits, int sample, int steps, int classes, IReadOnlyList<string> symbols)
    {
        var text = new System.Text.StringBuilder();
        int previous = 0;
        for (int t = 0; t < steps; t++)
        {
            var row = logits.AsSpan((sample * steps + t) * classes, classes);
            int best = 0;
            for (int c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
            if (best != 0 && best != previous) text.Append(symbols[best - 1]);
            previous = best;
        }
        return text.ToString();
    }

    static string[] DictionaryFromMetadata(InferenceSession session) =>
        JsonSerializer.Deserialize<string[]>(session.ModelMetadata.CustomMetadataMap[OnnxExport.DictionaryKey])!;

    [Fact]
    public void SeedModelMatchesTheEngineOnRandomAndSyntheticImages()
    {
        var config = new ModelConfig();
        using var model = new CrnnModel(Device.Value, config);
        var (parameters, buffers) = NonTrivialWeights(model.Layout, seed: 17);
        model.Load(parameters, buffers);
        var onnx = OnnxExport.Build(config, CharDictionary.Default, parameters, buffers);
        using var session = new InferenceSession(onnx.ToByteArray());

        AssertSameLogits(model, session, RandomImages(config, 1, seed: 1), 1, "random, batch 1");
        AssertSameLogits(model, session, RandomImages(config, 3, seed: 2), 3, "random, batch 3");
        var (word, _) = SyntheticImages(CharDictionary.Default, 1, seed: 3);
        AssertSameLogits(model, session, word, 1, "synthetic word, batch 1");
        var (words, _) = SyntheticImages(CharDictionary.Default, 4, seed: 4);
        var ort = AssertSameLogits(model, session, words, 4, "synthetic words, batch 4");

        // A consumer decoding with the dictionary from the metadata reads what the engine's decoder reads.
        var symbols = DictionaryFromMetadata(session);
        var (ids, _) = model.DecodeLast();
        for (int b = 0; b < 4; b++)
            Assert.Equal(CharDictionary.Default.Decode(ids[b]), GreedyDecode(ort, b, config.TimeSteps, config.Classes, symbols));
    }

    [Fact]
    public void ModelTrainedAFewStepsMatchesTheEngineThroughACheckpointFile()
    {
        // A narrower model than the seed (scale 0.25, hidden 32) keeps training to seconds.
        var config = new ModelConfig(Scale: 0.25, Hidden: 32);
        string run = Path.Combine(_folder, "run");
        using var model = new CrnnModel(Device.Value, config);
        model.Initialize(seed: 5);
        using (var source = new SyntheticSource(CharDictionary.Default, seed: 6))
        using (var trainer = new Trainer(model, CharDictionary.Default, source,
                   new TrainOptions { Steps = 3, BatchSize = 4, LogEvery = 1, ValidateEvery = 0 }, run, validation: null))
        {
            while (trainer.Step < 3) trainer.TrainStep();
            trainer.SaveCheckpoint();
        }
        var checkpoint = Checkpoint.Load(run);
        Assert.Equal(model.Save().Buffers, checkpoint.Buffers);
        Assert.NotEqual(new ParameterLayout(config).Initialize(seed: 5).Buffers, checkpoint.Buffers); // BN statistics moved

        string path = Path.Combine(_folder, "model.onnx");
        OnnxExport.Write(OnnxExport.Build(checkpoint), path);
        Assert.Equal(["model.onnx", "run"], Directory.GetFileSystemEntries(_folder).Select(Path.GetFileName).Order()); // no temp left
        using var session = new InferenceSession(path);

        AssertSameLogits(model, session, RandomImages(config, 1, seed: 7), 1, "trained, random, batch 1");
        var (words, _) = SyntheticImages(CharDictionary.Default, 5, seed: 8);
        AssertSameLogits(model, session, words, 5, "trained, synthetic words, batch 5");
    }

    [Fact]
    public void GraphDeclaresOpsetShapesAndDictionary()
    {
        // A dictionary with a space and non-ASCII symbols must come back exactly from the metadata.
        var dictionary = CharDictionary.FromSymbols(["a", "b", "é", "中", "\"", "\\"], useSpaceChar: true);
        var config = new ModelConfig(Scale: 0.25, Classes: dictionary.Classes, Hidden: 16);
        var (parameters, buffers) = NonTrivialWeights(new ParameterLayout(config), seed: 9);
        string path = Path.Combine(_folder, "small.onnx");
        OnnxExport.Write(OnnxExport.Build(config, dictionary, parameters, buffers), path);

        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.Equal("crnn", model.ProducerName);
        var opset = Assert.Single(model.OpsetImport);
        Assert.Equal("", opset.Domain);
        Assert.Equal(14, opset.Version);
        Assert.Equal(7, model.IrVersion);
        var input = Assert.Single(model.Graph.Input);
        Assert.Equal("image", input.Name);
        Assert.Equal(["N", "3", "32", "100"], input.Type.TensorType.Shape.Dim.Select(d => d.DimParam is { Length: > 0 } p ? p : d.DimValue.ToString()));
        var logits = Assert.Single(model.Graph.Output);
        Assert.Equal("logits", logits.Name);
        Assert.Equal(["N", "25", "8"], logits.Type.TensorType.Shape.Dim.Select(d => d.DimParam is { Length: > 0 } p ? p : d.DimValue.ToString()));

        // Standard operators only, in topological order: every input is defined before its node reads it.
        var defined = new HashSet<string>(model.Graph.Initializer.Select(t => t.Name)) { "image" };
        foreach (var node in model.Graph.Node)
        {
            Assert.Contains(node.OpType, StandardOps);
            Assert.Equal("", node.Domain);
            Assert.All(node.Input, i => Assert.Contains(i, defined));
            foreach (var o in node.Output) Assert.True(defined.Add(o), $"{o} is defined twice");
        }
        Assert.Contains("logits", defined);
        Assert.Equal(2, model.Graph.Node.Count(n => n.OpType == "LSTM"));
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "BatchNormalization"); // folded into Conv
        // Float weights: every parameter once, except that a convolution's BatchNorm (γ, β) becomes one bias per channel.
        var layout = new ParameterLayout(config);
        long exported = model.Graph.Initializer.Where(t => t.DataType == (int)TensorProto.Types.DataType.Float).Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));
        long expected = layout.Parameters.Where(p => !p.Name.Contains(".bn.") || p.Name.EndsWith(".bn.bias")).Sum(p => (long)p.Length);
        Assert.Equal(expected, exported);

        using var session = new InferenceSession(path);
        Assert.Equal([-1, 3, 32, 100], session.InputMetadata["image"].Dimensions);
        Assert.Equal([-1, 25, 8], session.OutputMetadata["logits"].Dimensions);
        Assert.Equal(["a", "b", "é", "中", "\"", "\\", " "], DictionaryFromMetadata(session));
        Assert.Equal("0", session.ModelMetadata.CustomMetadataMap[OnnxExport.BlankKey]);
        Assert.Equal("crnn", session.ModelMetadata.ProducerName);
    }

    [Fact]
    public void DictionaryThatDoesNotFitTheModelIsRejected()
    {
        var config = new ModelConfig(Scale: 0.25, Hidden: 16);
        var (parameters, buffers) = new ParameterLayout(config).Initialize(seed: 1);
        var e = Assert.Throws<ArgumentException>(() => OnnxExport.Build(config, CharDictionary.FromSymbols(["a", "b"]), parameters, buffers));
        Assert.Contains("3 classes", e.Message);
    }
}
