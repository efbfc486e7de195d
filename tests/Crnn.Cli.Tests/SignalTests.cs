using System.Diagnostics;
using System.Runtime.InteropServices;
using Crnn.Engine;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.Cli.Tests;

/// <summary>A real `crnn train` process stopped by SIGTERM (a scheduler preempting it), SIGHUP (its terminal
/// closing) or SIGINT (Ctrl-C): it finishes the step, saves, exits 128 + the signal, and resuming continues
/// bit-identically.</summary>
public class SignalTests(ITestOutputHelper output) : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-cli-signal-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int signal);

    [DllImport("libc", EntryPoint = "signal")]
    static extern nint SetSignalHandler(int signal, nint handler);

    /// <summary>
    /// A signal ignored by this test process (run under nohup, or as a background job of a non-interactive shell,
    /// which ignores SIGHUP, resp. SIGINT) is ignored by the crnn it starts, and .NET leaves ignored signals
    /// alone, as a program started with nohup should. The test is about a signal that arrives, so it gives the
    /// child the default disposition: set here (safe, as nothing handles the ignored signal), inherited through exec.
    /// </summary>
    static void UnignoreForChildren(int signal)
    {
        var ignored = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:"));
        if (ignored is null) return;
        ulong mask = Convert.ToUInt64(ignored["SigIgn:".Length..].Trim(), 16);
        if ((mask & (1UL << (signal - 1))) != 0) SetSignalHandler(signal, 0); // SIG_DFL
    }

    /// <summary>Constant learning rate (--decay 0), so a run of 1000 steps and one of <see cref="Target"/> steps
    /// train their first steps alike.</summary>
    const string Common = "--device cpu --batch-size 2 --val-count 2 --val-every 0 --log-every 1 --decay 0 --no-progress --seed 3";
    const int Target = 5;

    [Theory]
    [InlineData(15, 143, "SIGTERM", false)]
    [InlineData(2, 130, "Ctrl-C", false)]
    [InlineData(1, 129, "SIGHUP", true)]
    public void ASignalSavesACheckpointExitsWith128PlusItAndResumesBitIdentically(int signal, int exitCode, string name, bool signalTwice)
    {
        string run = Path.Combine(_folder, "run");
        UnignoreForChildren(signal);
        var clock = Stopwatch.StartNew();
        using var process = new CrnnProcess($"train {Common} --steps 1000 --output {run}");
        process.ReadUntil("step 1/");
        Assert.Equal(0, kill(process.Id, signal));
        if (signalTwice)
        {
            // The second signal comes while the step or the save is still running: acknowledged, not obeyed.
            process.ReadUntil("stopping:");
            Assert.Equal(0, kill(process.Id, signal));
            process.ReadUntil("still stopping");
        }
        var (code, errors) = process.Finish();
        var lines = process.Lines;
        output.WriteLine($"{name}: exit code {code} after {clock.Elapsed.TotalSeconds:F1} s\n{string.Join('\n', lines)}\n{errors}");

        Assert.Equal(exitCode, code);
        Assert.Equal("", errors);
        var stopped = Checkpoint.Load(run);
        Assert.InRange(stopped.Step, 1, Target - 1);
        Assert.Single(lines, l => l.StartsWith("interrupted"));
        Assert.Equal($"interrupted by {name} at step {stopped.Step}/1000: checkpoint saved in {Path.GetFullPath(run)}; continue with --resume {run}",
            lines.Last());

        // Resumed up to the target, it holds what a run that never stopped holds: weights, statistics, moments.
        Assert.Equal(0, Cli.Run($"train {Common} --steps {Target} --output {run} --resume {run}").Code);
        string straight = Path.Combine(_folder, "straight");
        Assert.Equal(0, Cli.Run($"train {Common} --steps {Target} --output {straight}").Code);
        var (a, b) = (Checkpoint.Load(straight), Checkpoint.Load(run));
        Assert.Equal(Target, b.Step);
        Assert.Equal(a.Parameters, b.Parameters);
        Assert.Equal(a.Buffers, b.Buffers);
        Assert.Equal(a.AdamM, b.AdamM);
        Assert.Equal(a.AdamV, b.AdamV);
        output.WriteLine($"whole test {clock.Elapsed.TotalSeconds:F1} s");
    }
}
