using Crnn.Engine.Data;
using Crnn.Engine.Synthetic;
using Crnn.Kernels;

namespace Crnn.Engine.Training;

/// <summary>
/// What <c>crnn train</c> takes, as data: training data (label files or LMDB folders; none: the built-in synthetic
/// words), validation, dictionary, where to start from (<see cref="Resume"/> a run, or <see cref="Init"/> from a
/// model), output folder, optimizer and schedule (<see cref="Options"/>), device and kernel policy.
/// </summary>
public record TrainingSettings(string[] Train, string? Val, string? Dict, bool UseSpaceChar, string? Device,
    string Output, string? Resume, int ValCount, TrainOptions Options)
{
    /// <summary>Kernel policy: auto, host or gpu (null: $CRNN_KERNELS, else auto).</summary>
    public string? Kernels { get; init; }
    /// <summary>Checkpoint whose weights (not optimizer, step or schedule) the run starts from.</summary>
    public string? Init { get; init; }
    /// <summary>With <see cref="Init"/>: a new head for a dictionary other than the checkpoint's.</summary>
    public bool ResetHead { get; init; }
    /// <summary>How label texts are cased (train and validation data).</summary>
    public LabelCase Case { get; init; } = LabelCase.Auto;
    /// <summary>A bad sample (label or image) stops the run instead of being skipped.</summary>
    public bool Strict { get; init; }
    /// <summary>Fonts of the synthetic words (training, validation and samples); empty: the default catalog.</summary>
    public IReadOnlyList<string> Fonts { get; init; } = [];
    public IReadOnlyList<string> ExcludeFonts { get; init; } = [];
    public SyntheticOptions Synthetic => new() { Fonts = Fonts, ExcludeFonts = ExcludeFonts };

    /// <summary>Settings for the built-in synthetic words, written to <paramref name="output"/>.</summary>
    public static TrainingSettings SyntheticWords(string output, TrainOptions? options = null) =>
        new([], null, null, false, null, output, null, 256, options ?? new TrainOptions());
}

/// <summary>
/// A training run set up from <see cref="TrainingSettings"/> — device, model (fresh, resumed or initialized from a
/// checkpoint), data and validation — ready to <see cref="Run"/>. <c>crnn train</c> is this plus a progress view
/// and signal handling; applications use it directly:
/// <code>
/// using var job = TrainingJob.Open(TrainingSettings.SyntheticWords("runs/mine") with { Init = "models/en-number-mobile" });
/// job.Run(new Progress&lt;StepReport&gt;(r =&gt; Console.WriteLine($"{r.Step}: {r.Loss:F3}")), cancellationToken);
/// </code>
/// Checkpoints are the ones <c>crnn train</c> writes; cancelling saves one, as Ctrl-C does.
/// </summary>
public sealed class TrainingJob : IDisposable
{
    readonly List<IDisposable> _owned = [];

    public TrainingSettings Settings { get; }
    public CharDictionary Dictionary { get; }
    public ModelConfig Config { get; }
    public CrnnModel Model { get; }
    public Trainer Trainer { get; }
    /// <summary>The label-file or LMDB stream (null for synthetic words): bad images are reported through it.</summary>
    public LabelFileSource? Files { get; }
    public ValidationSet Validation { get; }

    TrainingJob(TrainingSettings s, TextWriter log)
    {
        try { (Dictionary, Config, Model, Trainer, Files, Validation) = SetUp(Settings = s, log); }
        catch
        {
            Dispose(); // what was opened before the failure
            throw;
        }
    }

    (CharDictionary, ModelConfig, CrnnModel, Trainer, LabelFileSource?, ValidationSet) SetUp(TrainingSettings s, TextWriter log)
    {
        s.Options.Validate();
        if (s.ValCount < 1) throw new ArgumentException($"--val-count must be at least 1, got {s.ValCount}");
        if (s.Init is not null && s.Resume is not null) throw new ArgumentException("--init starts a new run from a model, --resume continues one: give one of them");
        if (s.ResetHead && s.Init is null) throw new ArgumentException("--reset-head goes with --init");
        Checkpoint.CheckWritable(s.Output); // before minutes of data loading and training
        var checkpoint = s.Resume is null ? null : Checkpoint.Load(s.Resume);
        var start = s.Init is null ? null : Checkpoint.Load(s.Init);
        var dictionary = checkpoint?.Dictionary ?? (s.Dict is null ? start?.Dictionary ?? CharDictionary.Default : CharDictionary.Load(s.Dict, s.UseSpaceChar));
        var config = checkpoint?.Config ?? (start is null ? new ModelConfig(Classes: dictionary.Classes) : start.Config with { Classes = dictionary.Classes });
        bool newHead = start is not null && !start.Dictionary.Symbols.SequenceEqual(dictionary.Symbols);
        if (newHead && !s.ResetHead)
            throw new ArgumentException($"--dict gives {dictionary.Classes} classes ({dictionary.Classes - 1} symbols + blank), the --init model {start!.Config.Classes}" +
                (dictionary.Classes == start.Config.Classes ? " with other symbols" : "") +
                "; --reset-head trains a new head for the new dictionary (the rest of the model is kept)");
        int steps = config.TimeSteps;
        var format = config.Input; // the model's own input size and channel order

        var files = s.Train.Length == 0 ? null : Own(OpenTraining(s, dictionary, steps, format, log));
        var source = Own(new PrefetchingSource(files ?? (IBatchSource)new SyntheticSource(dictionary, s.Options.Seed, options: s.Synthetic, format: format)));
        var validation = Own(s.Val is null
            ? ValidationSet.Synthetic(dictionary, s.ValCount, seed: s.Options.Seed + 1_000_000, s.Synthetic, format)
            : OpenValidation(s, dictionary, steps, format, log));

        var device = Own(Device.Open(s.Device, s.Kernels));
        log.WriteLine($"device: {device}");
        var model = Own(new CrnnModel(device, config));
        model.Initialize(s.Options.Seed);
        if (start is not null)
        {
            model.Load(start.StartingWeights(config, model.Save().Parameters, resetHead: newHead), start.Buffers);
            log.WriteLine($"init: weights of {s.Init} (step {start.Step}){(newHead ? $"; new head for {config.Classes} classes" : "")}");
        }
        log.WriteLine($"model: {config.Describe()}, {config.ParameterCount:N0} parameters, {steps} time steps");
        string data = files != null
            ? $"{files.EpochSize:N0} samples from {string.Join(", ", s.Train)} (case: {s.Case.Resolve(dictionary).ToString().ToLowerInvariant()})"
            : "synthetic words (built-in)";
        log.WriteLine($"data: {data}; validation: {validation.Count} images");

        var trainer = Own(new Trainer(model, dictionary, source, s.Options, s.Output, validation));
        if (checkpoint != null)
        {
            trainer.Resume(checkpoint);
            log.WriteLine($"resumed from {s.Resume} at step {trainer.Step}");
        }
        return (dictionary, config, model, trainer, files, validation);
    }

    /// <summary>Sets the run up (loads data and checkpoints, opens the device); <paramref name="log"/> gets a few
    /// lines on what was set up (default: none). Bad settings are <see cref="ArgumentException"/>s, bad files
    /// <see cref="InvalidDataException"/>s or <see cref="CheckpointException"/>s, with one-line messages.</summary>
    public static TrainingJob Open(TrainingSettings settings, TextWriter? log = null) => new(settings, log ?? TextWriter.Null);

    /// <summary>Trains up to <see cref="TrainOptions.Steps"/>, reporting each logged step (and validation) to
    /// <paramref name="progress"/>. Cancelling stops after the current step and saves a checkpoint.</summary>
    public void Run(IProgress<StepReport>? progress = null, CancellationToken cancel = default)
    {
        Action<StepReport>? report = progress is null ? null : progress.Report;
        if (report is not null) Trainer.Logged += report;
        try { Trainer.Run(cancel); }
        finally
        {
            if (report is not null) Trainer.Logged -= report;
        }
    }

    T Own<T>(T resource) where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    /// <summary>The --train datasets, concatenated, as a seeded stream.</summary>
    static LabelFileSource OpenTraining(TrainingSettings s, CharDictionary dictionary, int steps, ImageFormat format, TextWriter log)
    {
        var data = Datasets.Open(s.Train, dictionary, steps, s.Case, s.Strict);
        data.Skipped.Report(log, string.Join(", ", s.Train));
        return new LabelFileSource(data, s.Options.Seed, s.Strict, format);
    }

    /// <summary>The --val dataset, decoded a chunk at a time at each validation; bad images are left out (or stop
    /// the run with --strict).</summary>
    static ValidationSet OpenValidation(TrainingSettings s, CharDictionary dictionary, int steps, ImageFormat format, TextWriter log)
    {
        var data = Datasets.Open(s.Val!, dictionary, steps, s.Case, s.Strict);
        data.Skipped.Report(log, s.Val!);
        return ValidationSet.Stream(data, s.Strict, (sample, error) => log.WriteLine($"skipped bad validation image {sample}: {error}"), format);
    }

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
    }
}
