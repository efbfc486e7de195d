using System.CommandLine;
using Crnn.Engine;
using Crnn.Engine.Data;
using Crnn.Engine.Synthetic;
using Crnn.Engine.Training;
using Crnn.Kernels;
using Spectre.Console;

namespace Crnn.Cli;

/// <summary><c>crnn train</c>: trains on label files, or on the built-in synthetic words when none is given.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var train = new Option<string[]>("--train") { Description = "label file (image_path<TAB>text) or LMDB folder; repeat to concatenate (default: built-in synthetic words)", AllowMultipleArgumentsPerToken = false };
        var val = new Option<string?>("--val") { Description = "validation label file or LMDB folder (default: held-out synthetic words)" };
        var dict = new Option<string?>("--dict") { Description = "dictionary file, one symbol per line (default: 0-9a-z)" };
        var space = new Option<bool>("--use-space-char") { Description = "append ' ' to the dictionary" };
        var steps = new Option<int>("--steps") { Description = "total training steps (a resumed run continues up to it)", DefaultValueFactory = _ => new TrainOptions().Steps };
        var batch = new Option<int>("--batch-size") { Description = "images per step", DefaultValueFactory = _ => 32 };
        var lr = new Option<float>("--lr") { Description = "Adam learning rate", DefaultValueFactory = _ => 5e-4f };
        var seed = new Option<int>("--seed") { Description = "seed for weights and data", DefaultValueFactory = _ => 1 };
        var device = DeviceChoice.DeviceOption();
        var kernels = DeviceChoice.KernelsOption();
        var output = new Option<string>("--output") { Description = "checkpoint and metrics folder", DefaultValueFactory = _ => "runs/crnn" };
        var resume = new Option<string?>("--resume") { Description = "continue from the checkpoint in this folder" };
        var init = new Option<string?>("--init") { Description = "start from this checkpoint's weights (imported or trained) with a fresh optimizer and schedule" };
        var resetHead = new Option<bool>("--reset-head") { Description = "with --init and a different dictionary: train a new classification head for it" };
        var clip = new Option<float?>("--clip-norm") { Description = "clip the global gradient norm to this value" };
        var warmup = new Option<int>("--warmup") { Description = "linear learning-rate warm-up steps" };
        var decay = new Option<float>("--decay") { Description = "share of the steps, at the end, over which the learning rate follows a cosine to zero (0: constant)", DefaultValueFactory = _ => new TrainOptions().DecayFraction };
        var logEvery = new Option<int>("--log-every") { Description = "steps between log lines", DefaultValueFactory = _ => 10 };
        var valEvery = new Option<int>("--val-every") { Description = "steps between validations and checkpoints (0: at the end only)", DefaultValueFactory = _ => 500 };
        var valCount = new Option<int>("--val-count") { Description = "held-out synthetic words for validation", DefaultValueFactory = _ => 256 };
        var labelCase = DataOptions.Case();
        var strict = DataOptions.Strict();
        var fonts = SynthCommand.FontsOption();
        var excludeFonts = SynthCommand.ExcludeFontsOption();
        var maxBadSteps = new Option<int>("--max-bad-steps") { Description = "stop after this many steps in a row with a non-finite loss (each is skipped)", DefaultValueFactory = _ => 5 };
        var noProgress = new Option<bool>("--no-progress") { Description = "log lines instead of a live progress bar (the default when output is redirected)" };

        var command = new Command("train", "Train the recognizer; without --train it renders synthetic words to train on.");
        foreach (var o in new Option[] { train, val, dict, space, steps, batch, lr, seed, device, kernels, output, resume, init, resetHead, clip, warmup, decay, logEvery, valEvery, valCount, labelCase, strict, fonts, excludeFonts, maxBadSteps, noProgress })
            command.Options.Add(o);
        command.SetAction(p => UserError.Guard(() => Run(new Settings(
            p.GetValue(train) ?? [], p.GetValue(val), p.GetValue(dict), p.GetValue(space), p.GetValue(device),
            p.GetValue(output)!, p.GetValue(resume), p.GetValue(valCount),
            new TrainOptions
            {
                Steps = p.GetValue(steps), BatchSize = p.GetValue(batch), LearningRate = p.GetValue(lr), Seed = p.GetValue(seed),
                ClipNorm = p.GetValue(clip), WarmupSteps = p.GetValue(warmup), DecayFraction = p.GetValue(decay),
                LogEvery = p.GetValue(logEvery), ValidateEvery = p.GetValue(valEvery), MaxBadSteps = p.GetValue(maxBadSteps),
            })
        {
            Kernels = p.GetValue(kernels),
            Init = p.GetValue(init), ResetHead = p.GetValue(resetHead),
            Case = LabelCases.Parse(p.GetValue(labelCase)!), Strict = p.GetValue(strict),
            Fonts = p.GetValue(fonts) ?? [], ExcludeFonts = p.GetValue(excludeFonts) ?? [],
            Live = !p.GetValue(noProgress) && LiveView.Available ? AnsiConsole.Console : null,
        }, Console.Out)));
        return command;
    }

    /// <summary><see cref="TrainingSettings"/> and how to show progress.</summary>
    public sealed record Settings(string[] Train, string? Val, string? Dict, bool UseSpaceChar, string? Device,
        string Output, string? Resume, int ValCount, TrainOptions Options)
        : TrainingSettings(Train, Val, Dict, UseSpaceChar, Device, Output, Resume, ValCount, Options)
    {
        /// <summary>Show progress live on this console; null: log lines to the log writer.</summary>
        public IAnsiConsole? Live { get; init; }
    }

    /// <summary>Trains as <paramref name="s"/> says; 0 when done, 128 + the signal's number when stopped by Ctrl-C
    /// or <paramref name="cancel"/> (130), SIGTERM (143) or SIGHUP (129); a checkpoint is saved either way.</summary>
    public static int Run(Settings s, TextWriter log, CancellationToken cancel = default)
    {
        using var job = TrainingJob.Open(s, log);
        var (trainer, files, model, dictionary) = (job.Trainer, job.Files, job.Model, job.Dictionary);
        TrainingView view = s.Live is { } console
            ? new LiveView(console, s.Options.Steps, s.Options.BatchSize)
            : new PlainView(log, s.Options.Steps, s.Options.BatchSize);
        if (files != null) files.Report = view.Note; // bad images, once each, without breaking a live display
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var interrupt = new Interrupt(stop, view.Note);
        using (interrupt.Listen()) view.Run(trainer, () => trainer.Run(stop.Token));
        if (files is { BadImages: > 0 }) log.WriteLine($"bad images skipped: {files.BadImages:N0} in all");
        if (interrupt.Requested)
        {
            string by = interrupt.Signal is { } signal ? $" by {Interrupt.Name(signal)}" : "";
            log.WriteLine($"interrupted{by} at step {trainer.Step}/{s.Options.Steps}: checkpoint saved in {Path.GetFullPath(s.Output)}; continue with --resume {s.Output}");
            return interrupt.ExitCode;
        }
        log.WriteLine($"checkpoint: {Path.GetFullPath(s.Output)} (step {trainer.Step})" +
            (trainer.BestValAccuracy is { } best ? $"; best validation accuracy {best:P1} in {Path.Combine(s.Output, Trainer.BestFolder)}" : ""));
        if (s.Train.Length == 0) ShowSamples(model, dictionary, s, log);
        return 0;
    }

    /// <summary>Ends a synthetic run by reading a few unseen synthetic words back, saved as PNGs to try `crnn predict` on.</summary>
    static void ShowSamples(CrnnModel model, CharDictionary dictionary, Settings s, TextWriter log)
    {
        const int count = 6;
        string folder = Path.Combine(s.Output, "samples");
        Directory.CreateDirectory(folder);
        using var words = new SyntheticWords(dictionary, seed: s.Options.Seed + 2_000_000, s.Synthetic, model.Config.Input);
        int size = model.Config.Input.Size;
        var images = new float[count * size];
        var texts = new string[count];
        for (int i = 0; i < count; i++)
        {
            texts[i] = words.Sample(i, images.AsSpan(i * size, size)).Text;
            words.SavePng(i, Path.Combine(folder, $"{i}.png"));
        }
        var predictions = new Recognizer(model, dictionary, count).Read(images, count);
        log.WriteLine($"reading {count} unseen synthetic words (saved in {folder}):");
        for (int i = 0; i < count; i++)
            log.WriteLine($"  {texts[i],-12} -> {predictions[i].Text,-12} ({predictions[i].Confidence:F2}){(predictions[i].Text == texts[i] ? "" : "  x")}");
    }
}
