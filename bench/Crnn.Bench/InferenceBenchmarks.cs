using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Crnn.Engine;
using Crnn.Engine.Export;
using Crnn.Kernels;
using Google.Protobuf;
using ILGPU.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace Crnn.Bench;

/// <summary>
/// Inference of the seed model, host images in → host logits out: the engine's evaluation-mode forward on
/// its device (CRNN_DEVICE, else the best available) against ONNX Runtime's CPU execution provider running
/// the same weights exported with <see cref="OnnxExport"/>. ONNX Runtime gets one intra-op thread per
/// logical core (the engine's CPU accelerator and host kernels also use every core), sequential execution.
/// </summary>
[Config(typeof(ImagesPerSecondConfig))]
public class InferenceBenchmarks : IWork
{
    [Params(1, 32)]
    public int Batch { get; set; }

    /// <summary>ONNX Runtime's intra-op threads: every core, like the engine (see the report for pinning).</summary>
    public static int OrtThreads => Environment.ProcessorCount;

    CrnnModel _model = null!;
    Tensor<float> _input = null!;
    float[] _images = null!, _engineLogits = null!, _ortLogits = null!;
    InferenceSession _session = null!;
    SessionOptions _options = null!;
    RunOptions _runOptions = null!;
    OrtValue _ortInput = null!;

    [GlobalSetup]
    public void Setup()
    {
        var config = new ModelConfig();
        _model = new CrnnModel(BenchDevice.Get(), config);
        var (parameters, buffers) = _model.Layout.Initialize(seed: 1);
        _model.Load(parameters, buffers);
        using (var words = new SyntheticWords(CharDictionary.Default, seed: 1))
        {
            _images = new float[Batch * 3 * config.Height * config.Width];
            words.NextBatch(_images, new string[Batch], new int[Batch][]);
        }
        _input = _model.Device.Upload(_images, _images.Length);
        _engineLogits = new float[Batch * config.TimeSteps * config.Classes];
        _ortLogits = new float[_engineLogits.Length];

        _options = new SessionOptions
        {
            IntraOpNumThreads = OrtThreads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        _session = new InferenceSession(OnnxExport.Build(config, CharDictionary.Default, parameters, buffers).ToByteArray(), _options);
        _runOptions = new RunOptions();
        _ortInput = OrtValue.CreateTensorValueFromMemory(_images, [Batch, 3, config.Height, config.Width]);
        Console.WriteLine($"// ONNX Runtime {OrtEnv.Instance().GetVersionString()}, CPU execution provider, {OrtThreads} intra-op threads; engine on {_model.Device}");
        // Tiered compilation moves the host loops to optimized code only after ~30 calls and a quiet 100 ms: the short
        // warm-up alone measured batch 32 partly in tier-0 code. Both sides run a few seconds first.
        var warm = System.Diagnostics.Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < WarmSeconds) { Engine(); OnnxRuntime(); }
    }

    const double WarmSeconds = 4;

    [Benchmark(Baseline = true)]
    public void Engine()
    {
        _input.CopyFrom(_images);
        _model.Forward(_input.View, Batch, training: false).CopyToCPU(_engineLogits); // synchronizes
    }

    [Benchmark]
    public void OnnxRuntime()
    {
        using var results = _session.Run(_runOptions, [OnnxExport.InputName], [_ortInput], [OnnxExport.OutputName]);
        results[0].GetTensorDataAsSpan<float>().CopyTo(_ortLogits);
    }

    /// <summary>About 70 M multiply-adds per image (MODEL.md).</summary>
    public (double Flops, double Bytes) Work(string method) => (Batch * 2 * 70e6, 0);

    [GlobalCleanup]
    public void Cleanup()
    {
        _ortInput.Dispose();
        _runOptions.Dispose();
        _session.Dispose();
        _options.Dispose();
        _input.Dispose();
        _model.Dispose();
    }

    /// <summary>Adds images/s (Batch / mean time) to the summary.</summary>
    sealed class ImagesPerSecondConfig : ManualConfig
    {
        public ImagesPerSecondConfig() => AddColumn(new ImagesPerSecondColumn());
    }

    sealed class ImagesPerSecondColumn : IColumn
    {
        public string Id => "ImagesPerSecond";
        public string ColumnName => "Images/s";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 1;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "images per second: Batch / Mean";
        public bool IsAvailable(Summary summary) => true;
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            if (summary[benchmarkCase]?.ResultStatistics is not { } stats) return "-";
            int batch = (int)benchmarkCase.Parameters["Batch"];
            return $"{batch / (stats.Mean * 1e-9):F1}";
        }
    }
}
