using System.Diagnostics;
using Crnn.Engine;
using Crnn.Engine.Training;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.Cli.Tests;

/// <summary>Crash consistency: `crnn train` killed with SIGKILL at random moments (mid-step, mid-save, starting
/// up), again and again, always leaves an output folder that loads, and resuming after the last kill ends
/// exactly where a run that was never killed ends.</summary>
public class KillTests(ITestOutputHelper output) : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-cli-kill-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>A checkpoint (and a validation) every step, so many kills land in a save.</summary>
    const string Common = "--device cpu --batch-size 2 --val-count 2 --val-every 1 --log-every 1 --no-progress --seed 4";
    const int Steps = 40, Kills = 10;

    [Fact]
    public void KilledTenTimesTheRunStillLoadsEachTimeAndEndsBitIdentically()
    {
        string run = Path.Combine(_folder, "run");
        int seed = Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"kill delays from seed {seed}");
        var clock = Stopwatch.StartNew();
        long lastStep = 0;
        int midSave = 0;
        for (int kill = 0; kill < Kills; kill++)
        {
            bool resume = File.Exists(Path.Combine(run, Checkpoint.MetadataFile));
            using var process = new CrnnProcess($"train {Common} --steps {Steps} --output {run}" + (resume ? $" --resume {run}" : ""));
            process.ReadUntil("step "); // training has started: steps and saves follow each other from here on
            // Every other kill aims at a save (a step lasts far longer than a save, so chance alone seldom hits one).
            bool aimAtSave = kill % 2 == 1;
            if (aimAtSave) WaitForASave(run);
            int delay = aimAtSave ? random.Next(0, 60) : random.Next(0, 1000);
            Thread.Sleep(delay);
            process.KillHard();

            var checkpoint = Checkpoint.Load(run); // the assertion: a kill anywhere leaves a loadable folder
            Assert.InRange(checkpoint.Step, lastStep, Steps - 1);
            bool torn = SaveTemps(run).Length > 0;
            if (torn) midSave++;
            output.WriteLine($"kill {kill + 1}: {delay} ms after {(aimAtSave ? "a save began" : $"'{process.Lines.Last()}'")}; checkpoint at step {checkpoint.Step}{(torn ? " (killed in a save)" : "")}");
            lastStep = checkpoint.Step;
        }
        output.WriteLine($"{Kills} kills in {clock.Elapsed.TotalSeconds:F0} s, {midSave} of them in a save");

        Assert.Equal(0, Cli.Run($"train {Common} --steps {Steps} --output {run} --resume {run}").Code);
        string straight = Path.Combine(_folder, "straight");
        Assert.Equal(0, Cli.Run($"train {Common} --steps {Steps} --output {straight}").Code);
        foreach (var folder in new[] { "", Trainer.BestFolder })
        {
            var (a, b) = (Checkpoint.Load(Path.Combine(straight, folder)), Checkpoint.Load(Path.Combine(run, folder)));
            Assert.Equal(a.Step, b.Step);
            Assert.Equal(a.Parameters, b.Parameters);
            Assert.Equal(a.Buffers, b.Buffers);
            Assert.Equal(a.AdamM, b.AdamM);
            Assert.Equal(a.AdamV, b.AdamV);
        }
        Assert.Equal(MetricsWithoutSpeed(straight), MetricsWithoutSpeed(run));
        output.WriteLine($"whole test {clock.Elapsed.TotalSeconds:F0} s");
    }

    /// <summary>Temp files of checkpoint saves in <paramref name="run"/> and its best/ (not the write probe's).</summary>
    static string[] SaveTemps(string run) =>
        [.. Directory.GetFiles(run, ".*.tmp", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith(".write-test"))];

    /// <summary>Returns as soon as a checkpoint's temp files appear in <paramref name="run"/> (or its best/).</summary>
    static void WaitForASave(string run)
    {
        var clock = Stopwatch.StartNew();
        while (SaveTemps(run).Length == 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), "no checkpoint save began within a minute");
            Thread.Sleep(1);
        }
    }

    /// <summary>metrics.csv without its images/s column, which depends on the machine's load.</summary>
    static string[] MetricsWithoutSpeed(string folder)
    {
        int speed = Array.IndexOf(MetricsLog.Columns, "images_per_sec");
        return [.. File.ReadAllLines(Path.Combine(folder, MetricsLog.CsvFile)).Select(l => string.Join(',', l.Split(',').Where((_, i) => i != speed)))];
    }
}
