using System.Text;
using Crnn.Engine;
using Crnn.Engine.Training;
using Spectre.Console;
using Xunit;

namespace Crnn.Cli.Tests;

/// <summary>`crnn train` facing bad values, a full machine and Ctrl-C; and its two progress displays.</summary>
public class TrainRobustnessTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-cli-robust-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Every numeric option of train, out of range or not a number; each must fail before any training.</summary>
    [Theory]
    [InlineData("--steps -5", "--steps must be at least 1")]
    [InlineData("--steps abc", "'abc'")]
    [InlineData("--steps 99999999999", "'99999999999'")]
    [InlineData("--batch-size 0", "--batch-size must be at least 1")]
    [InlineData("--batch-size x", "'x'")]
    [InlineData("--lr 0", "--lr must be a positive number")]
    [InlineData("--lr -0.1", "--lr must be a positive number")]
    [InlineData("--lr NaN", "--lr must be a positive number")]
    [InlineData("--lr Infinity", "--lr must be a positive number")]
    [InlineData("--lr fast", "'fast'")]
    [InlineData("--seed -1", "--seed must be between 0 and")]
    [InlineData("--seed 2147483647", "--seed must be between 0 and")]
    [InlineData("--clip-norm 0", "--clip-norm must be a positive number")]
    [InlineData("--clip-norm -3", "--clip-norm must be a positive number")]
    [InlineData("--warmup -1", "--warmup must be between 0 and --steps")]
    [InlineData("--warmup 11 --steps 10", "--warmup must be between 0 and --steps (10)")]
    [InlineData("--decay 2", "--decay must be between 0 and 1")]
    [InlineData("--log-every 0", "--log-every must be at least 1")]
    [InlineData("--val-every -1", "--val-every must be 0 or more")]
    [InlineData("--val-count 0", "--val-count must be at least 1")]
    [InlineData("--max-bad-steps 0", "--max-bad-steps must be at least 1")]
    [InlineData("--max-bad-steps 1.5", "'1.5'")]
    [InlineData("--bogus 3", "--bogus")]
    [InlineData("--kernels simd", "'simd'")]
    public void BadOptionValuesAreOneLineAndExitCode2(string args, string message)
    {
        Cli.AssertUserError(Cli.Run($"train --device cpu --output {Path.Combine(_folder, "never")} {args}"), message);
        Assert.False(Directory.Exists(Path.Combine(_folder, "never")), "nothing is written for a rejected command");
    }

    [Fact]
    public void TheHostPolicyOnAGpuDeviceIsAUserError() =>
        Cli.AssertUserError(Cli.Run("bench", "--device", "cuda", "--kernels", "host", "--steps", "1"), "--kernels host runs only on the CPU accelerator");

    [Fact]
    public void AnUnwritableOutputFolderFailsBeforeTraining()
    {
        string file = Path.Combine(_folder, "a-file");
        File.WriteAllText(file, "");
        var (code, _, error) = Cli.Run($"train --device cpu --steps 1 --output {Path.Combine(file, "run")}");
        Assert.Equal(2, code);
        Assert.Matches("^error: output folder '.*' is not writable: .+\n$", error);
    }

    [Fact]
    public void ABatchTooLargeForTheDeviceSaysWhichBatchAndWhatToDo()
    {
        var (code, _, error) = Cli.Run($"train --device cpu --steps 1 --val-count 1 --batch-size 300000 --output {Path.Combine(_folder, "big")}");
        Assert.Equal(2, code);
        Assert.Equal("error: cannot allocate 10987 MiB on the device: one tensor may hold at most 2^31 elements (batch 300000); try a smaller --batch-size\n", error);
    }

    static TrainCommand.Settings Settings(string output, int steps) =>
        new([], null, null, false, "cpu", output, null, ValCount: 2,
            new TrainOptions { Steps = steps, BatchSize = 2, LogEvery = 1, ValidateEvery = 2 });

    /// <summary>A log that cancels the run once it has printed a line starting with <paramref name="prefix"/>.</summary>
    sealed class CancelOnLine(string prefix, CancellationTokenSource cancel) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.StartsWith(prefix) == true) cancel.Cancel();
        }
    }

    [Fact]
    public void CancellingSavesACheckpointAndExitsWith130()
    {
        string run = Path.Combine(_folder, "interrupted");
        using var cancel = new CancellationTokenSource();
        var log = new CancelOnLine("step 1/", cancel);
        Assert.Equal(130, TrainCommand.Run(Settings(run, steps: 3), log, cancel.Token));
        Assert.Contains($"interrupted at step 1/3: checkpoint saved in {Path.GetFullPath(run)}; continue with --resume {run}", log.ToString());
        Assert.Equal(1, Checkpoint.Load(run).Step);
        Assert.False(Directory.Exists(Path.Combine(run, "samples")), "an interrupted run does not go on to read samples");

        // Resuming finishes the run.
        var resumed = Settings(run, steps: 3) with { Resume = run };
        Assert.Equal(0, TrainCommand.Run(resumed, new StringWriter()));
        Assert.Equal(3, Checkpoint.Load(run).Step);
    }

    [Fact]
    public void SecondCtrlCIsAcknowledgedButDoesNotInterruptTheSave()
    {
        using var cancel = new CancellationTokenSource();
        var notes = new List<string>();
        var interrupt = new Interrupt(cancel, notes.Add);
        Assert.False(interrupt.Requested);
        interrupt.Press();
        Assert.True(cancel.IsCancellationRequested);
        interrupt.Press();
        interrupt.Press();
        Assert.Equal(3, notes.Count);
        Assert.StartsWith("stopping: a checkpoint is saved", notes[0]);
        Assert.All(notes.Skip(1), n => Assert.StartsWith("still stopping", n));
    }

    [Fact]
    public void PlainLogShowsEpochAndEtaAndLiveDisplayShowsStepsAndValidation()
    {
        var log = new StringWriter();
        Assert.Equal(0, TrainCommand.Run(Settings(Path.Combine(_folder, "plain"), steps: 2), log));
        Assert.Matches(@"step 2/2  epoch 0\.00  loss \d+\.\d{4}  lr 0\.00E\+000  \d+\.\d img/s  ETA 0:00:00  val accuracy .* \(best so far: saved in best/\)", log.ToString());

        var screen = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.Yes,
            Out = new AnsiConsoleOutput(screen),
        });
        var live = new StringWriter();
        Assert.Equal(0, TrainCommand.Run(Settings(Path.Combine(_folder, "live"), steps: 2) with { Live = console }, live));
        string shown = screen.ToString();
        Assert.Contains("step 2/2", shown);
        Assert.Contains("img/s  ETA", shown);
        Assert.Contains("val accuracy", shown); // the line printed per validation
        Assert.DoesNotContain("step 1/2", live.ToString()); // no log lines while the live display runs
        Assert.Contains("checkpoint:", live.ToString());
    }
}
