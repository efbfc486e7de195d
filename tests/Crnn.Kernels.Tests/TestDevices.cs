using Xunit;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Crnn.Kernels.Tests;

/// <summary>
/// The devices every kernel test runs on: the default device (CPU accelerator, or whatever
/// CRNN_TEST_DEVICE names, e.g. cuda) and a GPU-like CPU device with 32-wide warps and 256-thread groups,
/// so shared-memory, barrier and warp code runs the way a GPU runs it. Opened once per test run.
/// </summary>
public static class TestDevices
{
    public const string Default = "default", GpuLike = "gpulike";

    static readonly Lazy<Device> _default = new(() => Device.Open(Environment.GetEnvironmentVariable("CRNN_TEST_DEVICE") is { Length: > 0 } spec ? spec : "cpu"));
    static readonly Lazy<Device> _gpuLike = new(() => Device.OpenCpu(threadsPerWarp: 32, warpsPerGroup: 8, groups: 1));

    /// <summary>Theory data: both device names.</summary>
    public static TheoryData<string> Names => new() { Default, GpuLike };

    public static Device Get(string name) => name switch
    {
        Default => _default.Value,
        GpuLike => _gpuLike.Value,
        _ => throw new ArgumentException($"unknown test device {name}"),
    };
}
