using System.Diagnostics;
using System.Text.Json;
using Crnn.Engine.Data;
using Crnn.Engine.Synthetic;
using Crnn.Kernels;
using ILGPU.Runtime;

namespace Crnn.Engine.Training;

/// <summary>What one logged step reports (also a row of metrics.jsonl and metrics.csv).</summary>
public sealed record StepReport(long Step, double Loss, float LearningRate, double ImagesPerSecond, double? ValAccuracy, double? ValNormEditDistance)
{
    /// <summary>Passes over the training data so far (samples drawn / epoch size).</summary>
    public double Epoch { get; init; }
    /// <summary>Steps skipped so far for a non-finite loss or gradient norm.</summary>
    public long SkippedSteps { get; init; }
    /// <summary>Best validation accuracy so far (this validation included); null before any.</summary>
    public double? BestValAccuracy { get; init; }
    /// <summary>This validation set a new best, and <c>best/</c> was written.</summary>
    public bool NewBest { get; init; }
}

/// <summary>What every step reports, for a live progress display. <see cref="Skipped"/>: the loss or gradient
/// norm was not finite and the step was not applied.</summary>
public readonly record struct StepProgress(long Step, double Loss, double Epoch, bool Skipped);

/// <summary>
/// Adam training of a <see cref="CrnnModel"/> on a batch source: warm-up and cosine schedule, optional
/// gradient clipping, periodic validation, metrics files and atomic checkpoints (and <c>best/</c>, the
/// checkpoint of the best validation accuracy). The whole state (weights, BN statistics, Adam moments,
/// step, data position) is in the checkpoint, so a resumed run continues bit-identically.
/// A step whose loss or gradient norm is not finite changes nothing (see <see cref="TrainStep"/>);
/// <see cref="TrainOptions.MaxBadSteps"/> of them in a row stop training with a <see cref="TrainingException"/>.
/// </summary>
public sealed class Trainer : IDisposable
{
    /// <summary>Subfolder of the output holding the checkpoint with the best validation accuracy.</summary>
    public const string BestFolder = "best";

    readonly CrnnModel _model;
    readonly CharDictionary _dictionary;
    readonly IBatchSource _source;
    readonly TrainOptions _options;
    readonly string _output;
    readonly ValidationSet? _validation;
    readonly Tensor<float> _m, _v, _images, _savedBuffers;
    // The batch source fills this page-locked array (registered with the driver on CUDA, so the upload is a direct
    // copy; a plain pinned array on the CPU accelerator and OpenCL).
    readonly PageLockedArray1D<float> _hostImages;
    readonly string[] _texts;
    readonly int[][] _labels;
    double? _best;
    long _bestStep, _savedStep = -1;

    public long Step { get; private set; }
    public IReadOnlyDictionary<string, double> LastMetrics { get; private set; } = new Dictionary<string, double>();
    /// <summary>Steps skipped for a non-finite loss or gradient norm: in all, and in a row up to now.</summary>
    public long SkippedSteps { get; private set; }
    public int ConsecutiveSkipped { get; private set; }
    /// <summary>Whether the last <see cref="TrainStep"/> was skipped.</summary>
    public bool LastStepSkipped => ConsecutiveSkipped > 0;
    public double? BestValAccuracy => _best;
    double Epoch => (double)_source.Position / Math.Max(1, _source.EpochSize);

    /// <summary>Called for every logged step (progress display, console).</summary>
    public event Action<StepReport>? Logged;
    /// <summary>Called after every step, applied or skipped (live progress).</summary>
    public event Action<StepProgress>? Stepped;
    /// <summary>Called when a validation starts (it takes a while on a large validation set).</summary>
    public event Action<long>? Validating;

    /// <summary>How checkpoint files are created (tests inject failures: full disk, no permission).</summary>
    internal Func<string, Stream> CreateCheckpointFile { get; set; } = path => new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);

    public Trainer(CrnnModel model, CharDictionary dictionary, IBatchSource source, TrainOptions options, string output, ValidationSet? validation)
    {
        options.Validate();
        if (dictionary.Classes != model.Config.Classes)
            throw new ArgumentException($"dictionary has {dictionary.Classes} classes (with blank), the model {model.Config.Classes}");
        (_model, _dictionary, _source, _options, _output, _validation) = (model, dictionary, source, options, output, validation);
        int imageSize = 3 * model.Config.Height * model.Config.Width;
        var owned = new List<IDisposable>();
        try
        {
            owned.Add(_m = model.Device.Allocate(model.Layout.ParameterCount));
            owned.Add(_v = model.Device.Allocate(model.Layout.ParameterCount));
            owned.Add(_savedBuffers = model.Device.Allocate(model.Layout.BufferCount));
            owned.Add(_images = model.Device.Allocate(options.BatchSize, imageSize));
            owned.Add(_hostImages = model.Device.Accelerator.AllocatePageLocked1D<float>(options.BatchSize * imageSize));
            model.NetworkFor(options.BatchSize); // the step's workspace: an allocation failure shows here, not mid-run
        }
        catch (DeviceMemoryException e)
        {
            owned.ForEach(o => o.Dispose());
            throw e.ForBatch(options.BatchSize);
        }
        _m.Clear();
        _v.Clear();
        _texts = new string[options.BatchSize];
        _labels = new int[options.BatchSize][];
    }

    /// <summary>Continues from a checkpoint: weights, statistics, moments, step, data position, best accuracy.</summary>
    public void Resume(Checkpoint checkpoint)
    {
        if (checkpoint.Config != _model.Config) throw new ArgumentException($"checkpoint model {checkpoint.Config} differs from {_model.Config}");
        if (checkpoint.AdamM is null || checkpoint.AdamV is null) throw new ArgumentException("checkpoint has no optimizer state (optimizer.safetensors) to resume from");
        _model.Load(checkpoint.Parameters, checkpoint.Buffers);
        _m.CopyFrom(checkpoint.AdamM);
        _v.CopyFrom(checkpoint.AdamV);
        Step = _savedStep = checkpoint.Step;
        _source.Position = checkpoint.Rng.SamplesDrawn;
        LastMetrics = checkpoint.Metrics;
        SkippedSteps = checkpoint.Metrics.TryGetValue("skipped_steps", out var skipped) ? (long)skipped : 0;
        if (checkpoint.Metrics.TryGetValue("best_val_accuracy", out var best))
            (_best, _bestStep) = (best, checkpoint.Metrics.TryGetValue("best_step", out var at) ? (long)at : 0);
        // best/ may hold a better model than this checkpoint knows of (resumed from an older copy): never replace it with a worse one.
        if (BestOnDisk() is { } onDisk && !(onDisk.Accuracy <= _best)) (_best, _bestStep) = onDisk;
    }

    (double Accuracy, long Step)? BestOnDisk()
    {
        try
        {
            var best = Checkpoint.Load(Path.Combine(_output, BestFolder));
            return best.Metrics.TryGetValue("val_accuracy", out var a) ? (a, best.Step) : null;
        }
        catch (CheckpointException)
        {
            return null; // none yet, or unreadable: the next best validation replaces it
        }
    }

    /// <summary>Trains up to <see cref="TrainOptions.Steps"/> (the total, counting resumed steps). Cancelling
    /// <paramref name="cancel"/> stops after the current step and saves a checkpoint; the save itself is not
    /// interrupted.</summary>
    public void Run(CancellationToken cancel = default)
    {
        Checkpoint.CheckWritable(_output);
        using var metrics = MetricsLog.Open(_output, Step);
        double lossSum = 0;
        int lossCount = 0;
        var clock = Stopwatch.StartNew();
        long imagesSinceLog = 0;
        while (Step < _options.Steps && !cancel.IsCancellationRequested)
        {
            double loss = TrainStep();
            imagesSinceLog += _options.BatchSize;
            Stepped?.Invoke(new StepProgress(Step, loss, Epoch, LastStepSkipped));
            if (LastStepSkipped)
            {
                if (ConsecutiveSkipped >= _options.MaxBadSteps)
                    throw new TrainingException(
                        $"training stopped: {ConsecutiveSkipped} steps in a row after step {Step} had a non-finite loss or gradient norm " +
                        $"(last loss {loss}); {(_savedStep >= 0 ? $"the checkpoint of step {_savedStep} in '{_output}' is unchanged" : "no checkpoint was written")}; " +
                        "try a lower --lr or --clip-norm, or check the data");
                continue;
            }
            lossSum += loss;
            lossCount++;
            bool validate = Step == _options.Steps || (_options.ValidateEvery > 0 && Step % _options.ValidateEvery == 0);
            if (Step % _options.LogEvery == 0 || validate)
            {
                double? accuracy = null, distance = null;
                double rate = imagesSinceLog / clock.Elapsed.TotalSeconds;
                bool newBest = false;
                if (validate && _validation != null)
                {
                    Validating?.Invoke(Step);
                    // Through the training batch's buffer and network: a validation allocates nothing on the device.
                    var m = new Recognizer(_model, _dictionary, _images).Evaluate(_validation);
                    (accuracy, distance) = (m.Accuracy, m.NormEditDistance);
                    if (!(m.Accuracy <= _best)) (_best, _bestStep, newBest) = (m.Accuracy, Step, true);
                }
                var report = new StepReport(Step, lossSum / lossCount, _options.LearningRateAt(Step), rate, accuracy, distance)
                {
                    Epoch = Epoch, SkippedSteps = SkippedSteps, BestValAccuracy = _best, NewBest = newBest,
                };
                metrics.Append(report);
                LastMetrics = Metrics(report);
                if (newBest) SaveCheckpoint(Path.Combine(_output, BestFolder));
                if (validate)
                {
                    SaveCheckpoint();
                    metrics.WritePlot();
                }
                Logged?.Invoke(report);
                (lossSum, lossCount, imagesSinceLog) = (0, 0, 0);
                clock.Restart();
            }
        }
        if (cancel.IsCancellationRequested && Step != _savedStep)
        {
            SaveCheckpoint();
            metrics.WritePlot();
        }
    }

    /// <summary>
    /// One step: a batch, forward, CTC, backward, gradient norm (and clipping), Adam. Returns the mean loss.
    /// The loss sum, gradient norm and finite flag come back in the step's one device→host read.
    /// When the loss or the gradient norm is not finite the step is skipped: no Adam update, the BatchNorm
    /// running statistics (updated by the forward pass) restored, <see cref="Step"/> unchanged, and the
    /// skip counted; the batch is consumed all the same.
    /// </summary>
    public double TrainStep()
    {
        _source.NextBatch(_hostImages.GetArray(), _texts, _labels);
        _images.View.CopyFromCPU(_hostImages.GetArray()); // not the staging view's CopyTo: OpenCL has no CPU stream for it
        var statistics = _model.Store.Buffers.View;
        statistics.CopyTo(_savedBuffers.View);
        var losses = _model.ForwardBackward(_images.View, _labels);
        var k = _model.Kernels;
        var grads = _model.Store.Gradients.View;
        using var section = _model.Profiler?.Measure("optimizer (clip + adam)") ?? default;
        k.GradientNorm.Compute(grads, _options.ClipNorm ?? float.PositiveInfinity, losses);
        var result = k.GradientNorm.Read();
        double loss = (double)result.LossSum / _options.BatchSize;
        if (!result.IsFinite)
        {
            _savedBuffers.View.CopyTo(statistics);
            _model.Store.Changed();
            SkippedSteps++;
            ConsecutiveSkipped++;
            return loss;
        }
        ConsecutiveSkipped = 0;
        var scale = _options.ClipNorm is null ? default : k.GradientNorm.Scale;
        Step++;
        k.Adam.Step(_model.Store.Parameters.View, grads, _m.View, _v.View, AdamOptions.Adam(_options.LearningRateAt(Step)), (int)Step, scale);
        _model.Store.Changed();
        return loss;
    }

    Dictionary<string, double> Metrics(StepReport r)
    {
        var m = new Dictionary<string, double> { ["loss"] = r.Loss, ["images_per_sec"] = r.ImagesPerSecond, ["skipped_steps"] = r.SkippedSteps };
        if (r.ValAccuracy is { } a) m["val_accuracy"] = a;
        if (r.ValNormEditDistance is { } d) m["val_norm_edit_distance"] = d;
        if (_best is { } best)
        {
            m["best_val_accuracy"] = best;
            m["best_step"] = _bestStep;
        }
        return m;
    }

    /// <summary>Writes the model, optimizer and metadata atomically into the output folder.</summary>
    public void SaveCheckpoint()
    {
        SaveCheckpoint(_output);
        _savedStep = Step;
    }

    void SaveCheckpoint(string folder)
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
        }.Save(folder, CreateCheckpointFile);
    }

    public void Dispose()
    {
        _m.Dispose();
        _v.Dispose();
        _images.Dispose();
        _hostImages.Dispose();
        _savedBuffers.Dispose();
    }
}
