using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Crnn.Engine;
using Crnn.Engine.Data;
using Crnn.Engine.Synthetic;
using Crnn.Engine.Training;
using Crnn.Kernels;

namespace Crnn.Cli;

/// <summary>
/// <c>crnn bench</c>: images per second of full training steps (synthetic data, the seed model) and a
/// per-layer-family time breakdown, as a Markdown report; with <c>--loader</c>, the data loaders alone
/// against training. Runs anywhere the single-file CLI runs, including GPU machines without the .NET SDK.
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var batch = new Option<int[]>("--batch-size") { Description = "batch size(s) to measure", DefaultValueFactory = _ => [32], AllowMultipleArgumentsPerToken = true };
        var steps = new Option<int>("--steps") { Description = "measured steps per batch size", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "unmeasured steps first (kernel compilation, allocation)", DefaultValueFactory = _ => 2 };
        var device = DeviceChoice.DeviceOption();
        var kernels = DeviceChoice.KernelsOption();
        var output = new Option<string?>("--output") { Description = "also write the Markdown report to this file" };
        var launches = new Option<bool>("--launches") { Description = "list every kernel launch of one training step (grid, parallel work, FLOPs, bytes) and the launch summary; on the CPU the plan of an H100 (132 SMs), computed without running the kernels" };
        var loader = new Option<bool>("--loader") { Description = "measure the data loaders instead: images/s of synthetic words and a label file, direct and prefetched, and training steps with and without prefetching" };
        var command = new Command("bench", "Measure training-step throughput and the time per layer family.");
        foreach (var o in new Option[] { batch, steps, warmup, device, kernels, output, loader, launches }) command.Options.Add(o);
        command.SetAction(p => UserError.Guard(() => p.GetValue(launches)
            ? RunLaunches(p.GetValue(batch)![0], new DeviceChoice(p.GetValue(device), p.GetValue(kernels)), p.GetValue(output), Console.Out)
            : p.GetValue(loader)
            ? RunLoader(p.GetValue(batch)!, p.GetValue(steps), p.GetValue(warmup), new DeviceChoice(p.GetValue(device), p.GetValue(kernels)), p.GetValue(output), Console.Out)
            : Run(p.GetValue(batch)!, p.GetValue(steps), p.GetValue(warmup), new DeviceChoice(p.GetValue(device), p.GetValue(kernels)), p.GetValue(output), Console.Out)));
        return command;
    }

    public static int Run(int[] batchSizes, int steps, int warmup, DeviceChoice deviceChoice, string? outputFile, TextWriter log)
    {
        CheckCounts(batchSizes, steps, warmup);
        using var device = deviceChoice.Open();
        var report = new StringBuilder();
        report.AppendLine($"# Training-step benchmark ({DateTime.UtcNow:yyyy-MM-dd})").AppendLine();
        DescribeMachine(report, device, Reproduce("", batchSizes, steps, warmup, deviceChoice, device));
        report.AppendLine($"- model: seed CRNN (MobileNetV3-large ×0.5, BiLSTM 96, 37 classes), {new ModelConfig().ParameterCount:N0} parameters; synthetic words; Adam").AppendLine();
        foreach (int batch in batchSizes) Measure(device, batch, steps, warmup, report, log);
        log.Write(report);
        if (outputFile != null) File.WriteAllText(outputFile, report.ToString());
        return 0;
    }

    static void CheckCounts(int[] batchSizes, int steps, int warmup)
    {
        if (steps < 1) throw new ArgumentException($"--steps must be at least 1, got {steps}");
        if (warmup < 0) throw new ArgumentException($"--warmup must be 0 or more, got {warmup}");
        if (batchSizes.Length == 0 || batchSizes.Any(b => b < 1)) throw new ArgumentException("--batch-size values must be at least 1");
    }

    /// <summary>The header lines that make a result file stand alone: when, where, on what, and how to repeat it.</summary>
    static void DescribeMachine(StringBuilder report, Device device, string reproduce)
    {
        report.AppendLine($"- date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        report.AppendLine($"- machine: {Environment.MachineName}, {CpuModel()}, {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}{LoadAverage()}");
        report.AppendLine($"- device: {device}");
        report.AppendLine($"- reproduce: `{reproduce}`");
    }

    static string Reproduce(string mode, int[] batchSizes, int steps, int warmup, DeviceChoice choice, Device device) =>
        $"crnn bench{mode} --device {choice.Device ?? DeviceKind(device)} --kernels {device.Policy.ToString().ToLowerInvariant()} --batch-size {string.Join(' ', batchSizes)} --steps {steps} --warmup {warmup}";

    /// <summary>The CPU's model name (Linux: /proc/cpuinfo), else its architecture.</summary>
    static string CpuModel()
    {
        const string cpuinfo = "/proc/cpuinfo";
        string? name = File.Exists(cpuinfo)
            ? File.ReadLines(cpuinfo).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : Environment.GetEnvironmentVariable("PROCESSOR_IDENTIFIER");
        return string.IsNullOrEmpty(name) ? RuntimeInformation.ProcessArchitecture.ToString() : name;
    }

    /// <summary>", load 1.23 at start" (Linux 1-minute load average): shows when other work shared the CPU.</summary>
    static string LoadAverage()
    {
        const string loadavg = "/proc/loadavg";
        return File.Exists(loadavg) ? $", load {File.ReadAllText(loadavg).Split(' ')[0]} at start" : "";
    }

    /// <summary>The --device value that opens the same kind of accelerator.</summary>
    static string DeviceKind(Device device) => device.Accelerator.AcceleratorType switch
    {
        ILGPU.Runtime.AcceleratorType.Cuda => "cuda",
        ILGPU.Runtime.AcceleratorType.OpenCL => "opencl",
        _ => "cpu",
    };

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

    // ---- crnn bench --launches ----

    /// <summary>The SM count the launch summary measures grids against (an H100 SXM / H200).</summary>
    public const int TargetMultiprocessors = 132;

    /// <summary>
    /// Every kernel launch of one training step at <paramref name="batch"/>, with its grid, the parallel work it
    /// exposes (256-thread groups' worth of independent work), FLOPs and bytes, then the summary line. On a GPU
    /// the step runs (after one unrecorded step); on the CPU accelerator the plan is that of an H100 (132 SMs of
    /// 2 048 threads: the grid sizes a CUDA device would get), recorded without running the kernels.
    /// </summary>
    public static int RunLaunches(int batch, DeviceChoice deviceChoice, string? outputFile, TextWriter log)
    {
        if (batch < 1) throw new ArgumentException("--batch-size must be at least 1");
        using var device = deviceChoice.Open();
        bool dryRun = device.IsCpu;
        if (dryRun) device.PlanAsGpu(TargetMultiprocessors, 2048);
        using var model = new CrnnModel(device, new ModelConfig());
        model.Initialize(seed: 1);
        using var source = new SyntheticSource(CharDictionary.Default, seed: 1);
        var options = new TrainOptions { Steps = int.MaxValue, BatchSize = batch };
        using var trainer = new Trainer(model, CharDictionary.Default, source, options, Path.GetTempPath(), validation: null);
        if (!dryRun) trainer.TrainStep();
        var plan = new LaunchPlan { DryRun = dryRun };
        device.Plan = plan;
        try { trainer.TrainStep(); }
        finally { device.Plan = null; }
        device.Synchronize();

        var report = new StringBuilder();
        report.AppendLine($"# Kernel launches of one training step ({DateTime.UtcNow:yyyy-MM-dd})").AppendLine();
        DescribeMachine(report, device, $"crnn bench --launches --device {deviceChoice.Device ?? DeviceKind(device)} --kernels {device.Policy.ToString().ToLowerInvariant()} --batch-size {batch}");
        report.AppendLine($"- seed model, batch {batch}; " + (dryRun
            ? $"planned for {TargetMultiprocessors} SMs × 2 048 threads ({device.MaxGroups} groups of {device.GroupSize} at most), kernels not run"
            : "recorded while running"));
        report.AppendLine($"- parallel groups: the 256-thread groups' worth of independent work a launch exposes (its outputs, tiles, channels or sequences that need no other group); under {TargetMultiprocessors} a launch cannot fill an H100").AppendLine();
        report.AppendLine("| # | kernel | groups × threads | parallel groups | MFLOP | MB |").AppendLine("|---:|---|---:|---:|---:|---:|");
        for (int i = 0; i < plan.Launches.Count; i++)
        {
            var l = plan.Launches[i];
            report.AppendLine($"| {i + 1} | {l.Kernel} | {l.Groups} × {l.GroupSize} | {l.ParallelGroups:N0} | {l.Flops / 1e6:F2} | {l.Bytes / 1e6:F2} |");
        }
        report.AppendLine().AppendLine("| kernel | launches | GFLOP | share of FLOPs under " + TargetMultiprocessors + " groups |").AppendLine("|---|---:|---:|---:|");
        double totalFlops = plan.Launches.Sum(l => l.Flops);
        foreach (var g in plan.Launches.GroupBy(l => l.Kernel).OrderByDescending(g => g.Sum(l => l.Flops)))
            report.AppendLine($"| {g.Key} | {g.Count()} | {g.Sum(l => l.Flops) / 1e9:F3} | {g.Where(l => l.ParallelGroups < TargetMultiprocessors).Sum(l => l.Flops) / totalFlops:P1} |");
        report.AppendLine();
        report.AppendLine($"launches per step: {plan.Launches.Count}; FLOP share in launches under {TargetMultiprocessors} parallel groups: {100 * plan.SmallGridFlopShare(TargetMultiprocessors):F1} %");
        log.Write(report);
        if (outputFile != null) File.WriteAllText(outputFile, report.ToString());
        return 0;
    }

    // ---- crnn bench --loader ----

    const int LabelFileImages = 500;

    /// <summary>
    /// Loader images/s (each source alone, one thread, as its NextBatch runs, and as the prefetcher delivers)
    /// beside training images/s with and without prefetching, so one sees whether data or compute bounds a step.
    /// </summary>
    public static int RunLoader(int[] batchSizes, int steps, int warmup, DeviceChoice deviceChoice, string? outputFile, TextWriter log)
    {
        CheckCounts(batchSizes, steps, warmup);
        int batch = batchSizes[0];
        using var device = deviceChoice.Open();
        var report = new StringBuilder();
        report.AppendLine($"# Data-loader benchmark ({DateTime.UtcNow:yyyy-MM-dd})").AppendLine();
        DescribeMachine(report, device, Reproduce(" --loader", batchSizes, steps, warmup, deviceChoice, device));
        report.AppendLine($"- batch {batch}; loaders run for about {LoaderSeconds} s each; training: the seed model, median of {steps} steps after {Math.Max(1, warmup)} warm-up steps");
        report.AppendLine($"- label file: {LabelFileImages} synthetic words saved as PNG, decoded with ImageSharp").AppendLine();

        string folder = Directory.CreateTempSubdirectory("crnn-bench-loader-").FullName;
        try
        {
            var samples = WriteLabelFile(folder, log);
            var dictionary = CharDictionary.Default;
            int imageFloats = Preprocess.Channels * 32 * 100;
            report.AppendLine("| loader | how | images/s |").AppendLine("|---|---|---:|");
            void Row(string loader, string how, double rate)
            {
                report.AppendLine($"| {loader} | {how} | {rate:F0} |");
                log.WriteLine($"{loader}, {how}: {rate:F0} images/s");
            }

            using (var words = new SyntheticWords(dictionary, seed: 1))
            {
                var image = new float[imageFloats];
                long next = 0;
                Row("synthetic words", "one thread (render + preprocess)", ImagesPerSecond(1, () => words.Sample(next++, image)));
            }
            using (var source = new SyntheticSource(dictionary, seed: 1))
                Row("synthetic words", "SyntheticSource.NextBatch (Parallel.For)", BatchesPerSecond(source, batch, imageFloats));
            using (var source = new PrefetchingSource(new SyntheticSource(dictionary, seed: 1)))
                Row("synthetic words", "PrefetchingSource (one worker)", BatchesPerSecond(source, batch, imageFloats));

            int file = 0;
            Row("label file (PNG)", "one thread = LabelFileSource.NextBatch", ImagesPerSecond(1, () => Preprocess.LoadFile(samples[file++ % samples.Count].Path)));
            Row("label file (PNG)", "Parallel.For over the batch (not what LabelFileSource does)", ImagesPerSecond(batch,
                () => Parallel.For(0, batch, b => Preprocess.LoadFile(samples[(file + b) % samples.Count].Path)), () => file += batch));
            using (var source = new PrefetchingSource(new LabelFileSource(samples, seed: 1)))
                Row("label file (PNG)", "PrefetchingSource (one worker)", BatchesPerSecond(source, batch, imageFloats));

            report.AppendLine().AppendLine($"Training steps, batch {batch}:").AppendLine();
            report.AppendLine("| data | prefetch | images/s | ms per step | of which waiting for the batch (ms) |").AppendLine("|---|---|---:|---:|---:|");
            foreach (bool labelFile in new[] { false, true })
                foreach (bool prefetch in new[] { false, true })
                {
                    IBatchSource inner = labelFile ? new LabelFileSource(samples, seed: 1) : new SyntheticSource(dictionary, seed: 1);
                    using var source = prefetch ? new PrefetchingSource(inner) : inner;
                    var (seconds, wait) = SecondsPerStep(device, source, batch, steps, warmup);
                    string data = labelFile ? "label file (PNG)" : "synthetic words";
                    report.AppendLine($"| {data} | {(prefetch ? "yes" : "no")} | {batch / seconds:F1} | {1000 * seconds:F1} | {1000 * wait:F2} |");
                    log.WriteLine($"training on {data}, prefetch {(prefetch ? "on" : "off")}: {batch / seconds:F1} images/s, waiting {1000 * wait:F2} ms per step for data");
                }
        }
        finally { Directory.Delete(folder, recursive: true); }

        report.AppendLine().AppendLine("Other processes on the machine make these numbers noisy; compare rows of one run.");
        log.WriteLine();
        log.Write(report);
        if (outputFile != null) File.WriteAllText(outputFile, report.ToString());
        return 0;
    }

    const double LoaderSeconds = 3;

    /// <summary>Runs <paramref name="step"/> (then <paramref name="advance"/>) for about <see cref="LoaderSeconds"/>
    /// after one unmeasured call; <paramref name="images"/> per call.</summary>
    static double ImagesPerSecond(int images, Action step, Action? advance = null)
    {
        step();
        advance?.Invoke();
        var clock = Stopwatch.StartNew();
        long done = 0;
        while (clock.Elapsed.TotalSeconds < LoaderSeconds)
        {
            step();
            advance?.Invoke();
            done += images;
        }
        return done / clock.Elapsed.TotalSeconds;
    }

    static double BatchesPerSecond(IBatchSource source, int batch, int imageFloats)
    {
        var images = new float[batch * imageFloats];
        var texts = new string[batch];
        var labels = new int[batch][];
        return ImagesPerSecond(batch, () => source.NextBatch(images, texts, labels));
    }

    /// <summary>Median seconds of a whole step and of the wait for its batch (the part prefetching can hide).</summary>
    static (double Step, double Wait) SecondsPerStep(Device device, IBatchSource source, int batch, int steps, int warmup)
    {
        using var model = new CrnnModel(device, new ModelConfig());
        model.Initialize(seed: 1);
        var options = new TrainOptions { Steps = int.MaxValue, BatchSize = batch };
        var timed = new WaitTimer(source);
        using var trainer = new Trainer(model, CharDictionary.Default, timed, options, Path.GetTempPath(), validation: null);
        for (int i = 0; i < Math.Max(1, warmup); i++) trainer.TrainStep();
        device.Synchronize();
        // Medians: other processes stall single steps at random. A step waits for its losses anyway, so
        // synchronizing after each one changes nothing.
        var times = new double[steps];
        var waits = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            var clock = Stopwatch.StartNew();
            trainer.TrainStep();
            device.Synchronize();
            (times[i], waits[i]) = (clock.Elapsed.TotalSeconds, timed.LastWait);
        }
        return (Median(times), Median(waits));
    }

    static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /// <summary>Times each NextBatch call: how long the trainer waits for data.</summary>
    sealed class WaitTimer(IBatchSource inner) : IBatchSource
    {
        public double LastWait { get; private set; }
        public int Seed => inner.Seed;
        public long Position { get => inner.Position; set => inner.Position = value; }
        public long EpochSize => inner.EpochSize;

        public void NextBatch(float[] images, string[] texts, int[][] labels)
        {
            long start = Stopwatch.GetTimestamp();
            inner.NextBatch(images, texts, labels);
            LastWait = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        public void Dispose() { } // the caller disposes the wrapped source
    }

    /// <summary>Synthetic words saved as PNGs with a PaddleOCR label file (what `crnn synth` writes), read back as training samples.</summary>
    static IReadOnlyList<LabeledImage> WriteLabelFile(string folder, TextWriter log)
    {
        SynthCommand.Run(new SynthCommand.Settings(LabelFileImages, folder, Seed: 2, Dict: null, UseSpaceChar: false, new SyntheticOptions()), log);
        return LabelFile.Read(Path.Combine(folder, "labels.txt"), CharDictionary.Default, new ModelConfig().TimeSteps).Samples;
    }
}
