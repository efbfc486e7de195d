using System.Diagnostics;
using System.Text.Json;
using Crnn.Engine.Data;
using Crnn.Kernels;

namespace Crnn.Engine.Training;

/// <summary>Held-out images and their texts, preprocessed once.</summary>
public sealed record ValidationSet(float[] Images, IReadOnlyList<string> Texts)
{
    /// <summary>Renders <paramref name="count"/> synthetic words from a seed the training stream never uses.</summary>
    public static ValidationSet Synthetic(CharDictionary dictionary, int count, int seed)
    {
        using var words = new SyntheticWords(dictionary, seed);
        var images = new float[count * Preprocess.Channels * words.OutHeight * words.OutWidth];
        var texts = new string[count];
        words.NextBatch(images, texts, new int[count][]);
        return new ValidationSet(images, texts);
    }
}

/// <summary>What one logged step reports (also a line of metrics.jsonl).</summary>
public sealed record StepReport(long Step, double Loss, float LearningRate, double ImagesPerSecond, double? ValAccuracy, double? ValNormEditDistance);

/// <summary>
/// Adam training of a <see cref="CrnnModel"/> on a batch source: warm-up and cosine schedule, optional
/// gradient clipping, periodic validation, metrics.jsonl and atomic checkpoints. The whole state (weights,
/// BN statistics, Adam moments, step, data position) is in the checkpoint, so a resumed run continues
/// bit-identically.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly CrnnModel _model;
    readonly CharDictionary _dictionary;
    readonly IBatchSource _source;
    readonly TrainOptions _options;
    readonly string _output;
    readonly ValidationSet? _validation;
    readonly Tensor<float> _m, _v, _images;
    readonly float[] _hostImages;
    readonly string[] _texts;
    readonly int[][] _labels;

    public long Step { get; private set; }
    public IReadOnlyDictionary<string, double> LastMetrics { get; private set; } = new Dictionary<string, double>();

    /// <summary>Called for every logged step (progress display, console).</summary>
    public event Action<StepReport>? Logged;

    public Trainer(CrnnModel model, CharDictionary dictionary, IBatchSource source, TrainOptions options, string output, ValidationSet? validation)
    {
        options.Validate();
        if (dictionary.Classes != model.Config.Classes)
            throw new ArgumentException($"dictionary has {dictionary.Classes} classes (with blank), the model {model.Config.Classes}");
        (_model, _dictionary, _source, _options, _output, _validation) = (model, dictionary, source, options, output, validation);
        _m = model.Device.Allocate(model.Layout.ParameterCount);
        _v = model.Device.Allocate(model.Layout.ParameterCount);
        _m.Clear();
        _v.Clear();
        int imageSize = 3 * model.Config.Height * model.Config.Width;
        _hostImages = new float[options.BatchSize * imageSize];
        _images = model.Device.Allocate(options.BatchSize * imageSize);
        _texts = new string[options.BatchSize];
        _labels = new int[options.BatchSize][];
    }

    /// <summary>Continues from a checkpoint: weights, statistics, moments, step and data position.</summary>
    public void Resume(Checkpoint checkpoint)
    {
        if (checkpoint.Config != _model.Config) throw new ArgumentException($"checkpoint model {checkpoint.Config} differs from {_model.Config}");
        if (checkpoint.AdamM is null || checkpoint.AdamV is null) throw new ArgumentException("checkpoint has no optimizer state (optimizer.safetensors) to resume from");
        _model.Load(checkpoint.Parameters, checkpoint.Buffers);
        _m.CopyFrom(checkpoint.AdamM);
        _v.CopyFrom(checkpoint.AdamV);
        Step = checkpoint.Step;
        _source.Position = checkpoint.Rng.SamplesDrawn;
        LastMetrics = checkpoint.Metrics;
    }

    /// <summary>Trains up to <see cref="TrainOptions.Steps"/> (the total, counting resumed steps).</summary>
    public void Run(CancellationToken cancel = default)
    {
        Directory.CreateDirectory(_output);
        using var metrics = new StreamWriter(Path.Combine(_output, "metrics.jsonl"), append: Step > 0);
        double lossSum = 0;
        int lossCount = 0;
        var clock = Stopwatch.StartNew();
        long imagesSinceLog = 0;
        while (Step < _options.Steps && !cancel.IsCancellationRequested)
        {
            double loss = TrainStep();
            lossSum += loss;
            lossCount++;
            imagesSinceLog += _options.BatchSize;
            bool validate = Step == _options.Steps || (_options.ValidateEvery > 0 && Step % _options.ValidateEvery == 0);
            if (Step % _options.LogEvery == 0 || validate)
            {
                double? accuracy = null, distance = null;
                double rate = imagesSinceLog / clock.Elapsed.TotalSeconds;
                if (validate && _validation != null)
                {
                    var m = new Recognizer(_model, _dictionary, _options.BatchSize).Evaluate(_validation.Images, _validation.Texts);
                    (accuracy, distance) = (m.Accuracy, m.NormEditDistance);
                }
                var report = new StepReport(Step, lossSum / lossCount, _options.LearningRateAt(Step), rate, accuracy, distance);
                metrics.WriteLine(JsonSerializer.Serialize(new
                {
                    step = report.Step, loss = report.Loss, lr = report.LearningRate, images_per_sec = report.ImagesPerSecond,
                    val_accuracy = report.ValAccuracy, val_norm_edit_distance = report.ValNormEditDistance,
                }));
                metrics.Flush();
                LastMetrics = Metrics(report);
                Logged?.Invoke(report);
                (lossSum, lossCount, imagesSinceLog) = (0, 0, 0);
                if (validate) SaveCheckpoint();
                clock.Restart();
            }
        }
        if (cancel.IsCancellationRequested) SaveCheckpoint();
    }

    /// <summary>One step: a batch, forward, CTC, backward, optional clipping, Adam. Returns the mean loss.</summary>
    public double TrainStep()
    {
        _source.NextBatch(_hostImages, _texts, _labels);
        _images.CopyFrom(_hostImages);
        var losses = _model.ForwardBackward(_images.View, _labels);
        var k = _model.Kernels;
        var grads = _model.Store.Gradients.View;
        var scale = default(ILGPU.ArrayView<float>);
        using var section = _model.Profiler?.Measure("optimizer (clip + adam)") ?? default;
        if (_options.ClipNorm is { } maxNorm)
        {
            k.GradientNorm.Compute(grads, maxNorm);
            scale = k.GradientNorm.Scale;
        }
        Step++;
        k.Adam.Step(_model.Store.Parameters.View, grads, _m.View, _v.View, AdamOptions.Adam(_options.LearningRateAt(Step)), (int)Step, scale);
        return losses.Average(l => (double)l);
    }

    Dictionary<string, double> Metrics(StepReport r)
    {
        var m = new Dictionary<string, double> { ["loss"] = r.Loss, ["images_per_sec"] = r.ImagesPerSecond };
        if (r.ValAccuracy is { } a) m["val_accuracy"] = a;
        if (r.ValNormEditDistance is { } d) m["val_norm_edit_distance"] = d;
        return m;
    }

    /// <summary>Writes the model, optimizer and metadata atomically into the output folder.</summary>
    public void SaveCheckpoint()
    {
        var (parameters, buffers) = _model.Save();
        new Checkpoint
        {
            Config = _model.Config,
            Dictionary = _dictionary,
            Parameters = parameters,
            Buffers = buffers,
            AdamM = _m.ToHost(),
            AdamV = _v.ToHost(),
            Step = Step,
            Epoch = (int)(_source.Position / Math.Max(1, _source.EpochSize)),
            Rng = new RngState(_source.Seed, _source.Position),
            Metrics = LastMetrics,
        }.Save(_output);
    }

    public void Dispose()
    {
        _m.Dispose();
        _v.Dispose();
        _images.Dispose();
    }
}
