using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>
/// Short runs (kernels on the CPU accelerator take milliseconds, and the machine has 2 cores) and a
/// throughput column: every benchmark class reports its work through <see cref="IWork"/>.
/// </summary>
public static class BenchConfig
{
    public static IConfig Create() => ManualConfig.Create(DefaultConfig.Instance)
        .AddJob(Job.ShortRun.WithWarmupCount(2).WithIterationCount(5).WithLaunchCount(1))
        .AddColumn(new ThroughputColumn())
        .WithOptions(ConfigOptions.DisableOptimizationsValidator);
}

/// <summary>What one benchmark invocation does: floating-point operations and bytes moved.</summary>
public interface IWork
{
    /// <summary>(flops, bytes) of the benchmark named <paramref name="method"/> at the current parameters.</summary>
    (double Flops, double Bytes) Work(string method);
}

/// <summary>GFLOP/s for compute-bound benchmarks, GB/s for the rest (whichever the benchmark declares).</summary>
sealed class ThroughputColumn : IColumn
{
    public string Id => "Throughput";
    public string ColumnName => "Throughput";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => false;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "effective GFLOP/s (compute) or GB/s (memory) from the benchmark's declared work";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats) return "-";
        var instance = (IWork)Activator.CreateInstance(benchmarkCase.Descriptor.Type)!;
        foreach (var p in benchmarkCase.Parameters.Items)
            benchmarkCase.Descriptor.Type.GetProperty(p.Name)?.SetValue(instance, p.Value);
        var (flops, bytes) = instance.Work(benchmarkCase.Descriptor.WorkloadMethod.Name);
        double seconds = stats.Mean * 1e-9;
        return flops > 0 ? $"{flops / seconds / 1e9:F2} GFLOP/s" : $"{bytes / seconds / 1e9:F2} GB/s";
    }
}

/// <summary>The device every benchmark runs on: --device-style spec in CRNN_DEVICE, else the best available,
/// with the kernel policy in CRNN_KERNELS (auto: host on the CPU accelerator, gpu elsewhere).</summary>
public static class BenchDevice
{
    static readonly Lazy<Device> _device = new(() => Device.Open());
    public static Device Get() => _device.Value;
}
