using System.Text.RegularExpressions;
using Xunit;

namespace Crnn.Cli.Tests;

/// <summary>The bench report's header says when, where and how it was measured, so a result file stands alone.</summary>
public class BenchReportTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-bench-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void HeaderHasDateMachineDeviceAndTheReproduceCommand()
    {
        string file = Path.Combine(_folder, "report.md");
        Assert.Equal(0, BenchCommand.Run([1], steps: 1, warmup: 0, "cpu", file, new StringWriter()));
        var lines = File.ReadAllLines(file);

        Assert.Matches(@"^- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC$", lines.Single(l => l.StartsWith("- date: ")));
        string machine = lines.Single(l => l.StartsWith("- machine: "));
        Assert.Contains($", {Environment.ProcessorCount} cores, ", machine);
        // host name, CPU model, cores, OS, .NET: five comma-separated fields at least
        Assert.True(Regex.Matches(machine, ", ").Count >= 4, machine);
        Assert.StartsWith("- device: cpu", lines.Single(l => l.StartsWith("- device: ")));
        Assert.Contains("- reproduce: `crnn bench --device cpu --kernels host --batch-size 1 --steps 1 --warmup 0`", lines);
        Assert.Contains("## Batch 1", lines);
    }
}
