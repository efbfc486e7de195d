using Crnn.Engine.Training;
using Xunit;

namespace Crnn.Engine.Tests;

/// <summary>Training from code: progress reports, and a cancellation that saves a checkpoint as Ctrl-C does.</summary>
public class TrainingJobTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-job-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Reports synchronously on the training thread (Progress&lt;T&gt; would post them to the thread pool).</summary>
    sealed class Reports(Action<StepReport> onReport) : IProgress<StepReport>
    {
        public List<StepReport> All { get; } = [];
        public void Report(StepReport value)
        {
            All.Add(value);
            onReport(value);
        }
    }

    [Fact]
    public void ProgressIsReportedAndCancellingSavesACheckpoint()
    {
        string output = Path.Combine(_folder, "run");
        var settings = TrainingSettings.SyntheticWords(output, new TrainOptions { Steps = 50, BatchSize = 2, LogEvery = 1, ValidateEvery = 0 }) with { ValCount = 2, Device = "cpu" };
        using var cancel = new CancellationTokenSource();
        var reports = new Reports(r => { if (r.Step == 3) cancel.Cancel(); });
        using (var job = TrainingJob.Open(settings))
        {
            Assert.Equal(new ModelConfig(), job.Config);
            job.Run(reports, cancel.Token);
            Assert.Equal(3, job.Trainer.Step);
        }
        Assert.Equal([1L, 2L, 3L], reports.All.Select(r => r.Step));
        Assert.All(reports.All, r => Assert.True(double.IsFinite(r.Loss) && r.Loss > 0));
        var saved = Checkpoint.Load(output);
        Assert.Equal(3, saved.Step);
        Assert.NotNull(saved.AdamM);

        // The same settings resume it to the end.
        using (var job = TrainingJob.Open(settings with { Resume = output, Options = settings.Options with { Steps = 5 } }))
        {
            Assert.Equal(3, job.Trainer.Step);
            job.Run();
            Assert.Equal(5, job.Trainer.Step);
        }
        Assert.Equal(5, Checkpoint.Load(output).Step);
    }

    [Fact]
    public void BadSettingsAreOneLineErrorsAndReleaseWhatWasOpened()
    {
        var settings = TrainingSettings.SyntheticWords(Path.Combine(_folder, "bad")) with { Init = "x", Resume = "y" };
        Assert.Contains("give one of them", Assert.Throws<ArgumentException>(() => TrainingJob.Open(settings)).Message);
        settings = TrainingSettings.SyntheticWords(Path.Combine(_folder, "bad")) with { Val = Path.Combine(_folder, "missing.txt") };
        Assert.ThrowsAny<Exception>(() => TrainingJob.Open(settings));
    }
}
