using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Crnn.Engine;
using Crnn.Engine.Data;
using Crnn.Engine.Training;
using Crnn.Kernels;

namespace Crnn.Cli;

/// <summary>
/// <c>crnn bench</c>: images per second of full training steps (synthetic data, the seed model) and a
/// per-layer-family time breakdown, as a Markdown report. Runs anywhere the single-file CLI runs,
/// including GPU machines without the .NET SDK.
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var batch = new Option<int[]>("--batch-size") { Description = "batch size(s) to measure", DefaultValueFactory = _ => [32], AllowMultipleArgumentsPerToken = true };
        var steps = new Option<int>("--steps") { Description = "measured steps per batch size", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "unmeasured steps first (kernel compilation, allocation)", DefaultValueFactory = _ => 2 };
        var device = new Option<string?>("--device") { Description = "cpu, cuda or opencl[:index]" };
        var output = new Option<string?>("--output") { Description = "also write the Markdown report to this file" };
        var command = new Command("bench", "Measure training-step throughput and the time per layer family.");
        foreach (var o in new Option[] { batch, steps, warmup, device, output }) command.Options.Add(o);
        command.SetAction(p => UserError.Guard(() =>
            Run(p.GetValue(batch)!, p.GetValue(steps), p.GetValue(warmup), p.GetValue(device), p.GetValue(output), Console.Out)));
        return command;
    }

    public static int Run(int[] batchSizes, int steps, int warmup, string? deviceSpec, string? outputFile, TextWriter log)
    {
        if (steps < 1) throw new ArgumentException($"--steps must be at least 1, got {steps}");
        if (warmup < 0) throw new ArgumentException($"--warmup must be 0 or more, got {warmup}");
        if (batchSizes.Length == 0 || batchSizes.Any(b => b < 1)) throw new ArgumentException("--batch-size values must be at least 1");
        using var device = Device.Open(deviceSpec);
        var report = new StringBuilder();
        report.AppendLine($"# Training-step benchmark ({DateTime.UtcNow:yyyy-MM-dd})").AppendLine();
        report.AppendLine($"- machine: {Environment.MachineName}, {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}");
        report.AppendLine($"- device: {device}");
        report.AppendLine($"- model: seed CRNN (MobileNetV3-large ×0.5, BiLSTM 96, 37 classes), {new ModelConfig().ParameterCount:N0} parameters; synthetic words; Adam").AppendLine();
        foreach (int batch in batchSizes) Measure(device, batch, steps, warmup, report, log);
        log.Write(report);
        if (outputFile != null) File.WriteAllText(outputFile, report.ToString());
        return 0;
    }

    static void Measure(Device device, int batch, int steps, int warmup, StringBuilder report, TextWriter log)
    {
        using var model = new CrnnModel(device, new ModelConfig());
        model.Initialize(seed: 1);
        using var source = new SyntheticSource(CharDictionary.Default, seed: 1);
        var options = new TrainOptions { Steps = int.MaxValue, BatchSize = batch };
        using var trainer = new Trainer(model, CharDictionary.Default, source, options, Path.GetTempPath(), validation: null);
        for (int i = 0; i < warmup; i++) trainer.TrainStep();
        device.Synchronize();

        // Throughput: unsynchronized steps, as training runs them (data rendering included).
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++) trainer.TrainStep();
        device.Synchronize();
        double seconds = clock.Elapsed.TotalSeconds;
        log.WriteLine($"batch {batch}: {steps * batch / seconds:F1} images/s");

        // Breakdown: the same steps with the device synchronized around every section.
        var profiler = new Profiler(device);
        model.Profiler = profiler;
        for (int i = 0; i < steps; i++) trainer.TrainStep();
        model.Profiler = null;
        double total = profiler.Milliseconds.Values.Sum();

        report.AppendLine($"## Batch {batch}").AppendLine();
        report.AppendLine($"**{steps * batch / seconds:F1} images/s** ({1000 * seconds / steps:F1} ms per step over {steps} steps after {warmup} warm-up steps).").AppendLine();
        report.AppendLine("| section | ms per step | share |").AppendLine("|---|---:|---:|");
        foreach (var (name, ms) in profiler.Milliseconds.OrderByDescending(kv => kv.Value))
            report.AppendLine($"| {name} | {ms / steps:F2} | {ms / total:P1} |");
        report.AppendLine($"| **total (synchronized)** | {total / steps:F2} | |").AppendLine();
    }
}
