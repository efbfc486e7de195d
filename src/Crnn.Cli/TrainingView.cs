using System.Diagnostics;
using System.Runtime.InteropServices;
using Crnn.Engine.Training;
using Spectre.Console;

namespace Crnn.Cli;

/// <summary>
/// What the user sees of a training run. The trainer only raises events; a view renders them: log lines
/// (<see cref="PlainView"/>, for redirected output and <c>--no-progress</c>) or a live display
/// (<see cref="LiveView"/>, on an interactive terminal).
/// </summary>
public abstract class TrainingView(long totalSteps, int batchSize)
{
    protected long TotalSteps => totalSteps;
    protected int BatchSize => batchSize;

    /// <summary>Subscribes to the trainer's events, then runs <paramref name="train"/> (a live display wraps it).</summary>
    public abstract void Run(Trainer trainer, Action train);

    /// <summary>A one-line message from another thread (Ctrl-C).</summary>
    public abstract void Note(string message);

    /// <summary>Time left at <paramref name="imagesPerSecond"/>, as h:mm:ss ("?" before there is a rate).</summary>
    protected string Eta(long step, double imagesPerSecond)
    {
        if (!(imagesPerSecond > 0) || double.IsInfinity(imagesPerSecond)) return "?";
        double seconds = Math.Max(0, totalSteps - step) * (double)batchSize / imagesPerSecond;
        return seconds >= TimeSpan.MaxValue.TotalSeconds ? "?" : TimeSpan.FromSeconds(Math.Round(seconds)).ToString(@"h\:mm\:ss");
    }

    /// <summary>The line printed for a validation (both views).</summary>
    protected static string ValidationText(StepReport r) =>
        $"val accuracy {r.ValAccuracy:P1}  norm edit {r.ValNormEditDistance:F4}" + (r.NewBest ? "  (best so far: saved in best/)" : $"  (best {r.BestValAccuracy:P1})");
}

/// <summary>Plain log lines: one per logged step (with epoch and ETA), one per skipped step.</summary>
public sealed class PlainView(TextWriter log, long totalSteps, int batchSize) : TrainingView(totalSteps, batchSize)
{
    readonly Lock _lock = new();

    public override void Run(Trainer trainer, Action train)
    {
        trainer.Logged += r => Write(
            $"step {r.Step}/{TotalSteps}  epoch {r.Epoch:F2}  loss {r.Loss:F4}  lr {r.LearningRate:E2}  {r.ImagesPerSecond:F1} img/s  ETA {Eta(r.Step, r.ImagesPerSecond)}" +
            (r.SkippedSteps > 0 ? $"  skipped {r.SkippedSteps}" : "") + (r.ValAccuracy is null ? "" : "  " + ValidationText(r)));
        trainer.Stepped += p =>
        {
            if (p.Skipped) Write($"step {p.Step + 1} skipped: loss {p.Loss} or its gradient norm is not finite ({trainer.ConsecutiveSkipped} in a row)");
        };
        train();
    }

    public override void Note(string message) => Write(message);

    void Write(string line)
    {
        lock (_lock) log.WriteLine(line);
    }
}

/// <summary>
/// A Spectre.Console progress bar: step/total, epoch, smoothed loss, last validation accuracy, images/s and
/// ETA, refreshed every step; each validation also prints a line above the bar.
/// </summary>
public sealed class LiveView(IAnsiConsole console, long totalSteps, int batchSize) : TrainingView(totalSteps, batchSize)
{
    /// <summary>Weight of the newest step in the smoothed loss and speed (about the last 20 steps).</summary>
    const double Smoothing = 0.05;

    volatile string _note = "";

    /// <summary>True when stdout is a terminal that can redraw a progress bar.</summary>
    public static bool Available => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    public override void Run(Trainer trainer, Action train)
    {
        double? loss = null, rate = null, accuracy = trainer.LastMetrics.TryGetValue("val_accuracy", out var last) ? last : null;
        var clock = Stopwatch.StartNew();
        console.Progress()
            .AutoClear(false)
            .Columns(new ProgressBarColumn(), new PercentageColumn(), new TaskDescriptionColumn { Alignment = Justify.Left })
            .Start(ctx =>
            {
                var task = ctx.AddTask("starting", maxValue: TotalSteps);
                task.Value = trainer.Step;
                void Show(long step, double epoch, string? status = null)
                {
                    task.Value = step;
                    task.Description = Markup.Escape(
                        $"step {step}/{TotalSteps}  epoch {epoch:F2}  loss {loss:F4}  val {(accuracy is { } a ? a.ToString("P1") : "-")}" +
                        $"  {rate:F1} img/s  ETA {Eta(step, rate ?? 0)}{(status is null ? "" : "  " + status)}{_note}");
                }
                trainer.Stepped += p =>
                {
                    double seconds = clock.Elapsed.TotalSeconds;
                    clock.Restart();
                    if (!p.Skipped) loss = loss is { } l ? l + Smoothing * (p.Loss - l) : p.Loss;
                    double now = BatchSize / Math.Max(seconds, 1e-9);
                    rate = rate is { } r ? r + Smoothing * (now - r) : now;
                    Show(p.Step, p.Epoch, p.Skipped ? $"skipped a step: loss {p.Loss} ({trainer.SkippedSteps} in all)" : null);
                };
                trainer.Validating += step => task.Description = Markup.Escape($"step {step}/{TotalSteps}  validating...{_note}");
                trainer.Logged += r =>
                {
                    if (r.ValAccuracy is not { } a) return;
                    accuracy = a;
                    console.MarkupLine(Markup.Escape($"step {r.Step}/{TotalSteps}  loss {r.Loss:F4}  " + ValidationText(r)));
                    Show(r.Step, r.Epoch);
                    clock.Restart(); // validation time is not training speed
                };
                train();
                ctx.Refresh();
            });
    }

    public override void Note(string message) => _note = "  " + message;
}

/// <summary>A request to stop training: Ctrl-C, a scheduler preempting the job, or the terminal closing.
/// The value is the POSIX signal number; the exit code is 128 + it, as shells report a signal.</summary>
public enum StopSignal { SIGHUP = 1, SIGINT = 2, SIGTERM = 15 }

/// <summary>
/// Ctrl-C, SIGTERM or SIGHUP: the first one cancels training, which then saves a checkpoint after the current
/// step; later ones are only acknowledged (the process is not killed), so they cannot interrupt that save.
/// </summary>
public sealed class Interrupt(CancellationTokenSource cancel, Action<string> note)
{
    int _presses;
    StopSignal? _signal;

    public bool Requested => cancel.IsCancellationRequested;

    /// <summary>The first signal received; null when none was (a cancellation from the caller counts as Ctrl-C).</summary>
    public StopSignal? Signal => _signal;

    /// <summary>128 + the first signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.</summary>
    public int ExitCode => 128 + (int)(_signal ?? StopSignal.SIGINT);

    public void Press(StopSignal signal = StopSignal.SIGINT)
    {
        if (Interlocked.Increment(ref _presses) == 1)
        {
            _signal = signal;
            note($"stopping: a checkpoint is saved after this step ({Name(signal)}; another signal will not interrupt it)");
            cancel.Cancel();
        }
        else
        {
            note($"still stopping ({Name(signal)}): waiting for the checkpoint to be written");
        }
    }

    public static string Name(StopSignal signal) => signal == StopSignal.SIGINT ? "Ctrl-C" : signal.ToString();

    /// <summary>Routes SIGINT, SIGTERM and SIGHUP to <see cref="Press"/> until disposed, cancelling each signal's
    /// default action (ending the process) so a save in progress always completes.</summary>
    public IDisposable Listen()
    {
        var registrations = new (PosixSignal Posix, StopSignal Stop)[]
        {
            (PosixSignal.SIGINT, StopSignal.SIGINT), (PosixSignal.SIGTERM, StopSignal.SIGTERM), (PosixSignal.SIGHUP, StopSignal.SIGHUP),
        }.Select(s => PosixSignalRegistration.Create(s.Posix, context =>
        {
            context.Cancel = true;
            Press(s.Stop);
        })).ToList();
        return new Registrations(registrations);
    }

    sealed class Registrations(List<PosixSignalRegistration> all) : IDisposable
    {
        public void Dispose() => all.ForEach(r => r.Dispose());
    }
}
