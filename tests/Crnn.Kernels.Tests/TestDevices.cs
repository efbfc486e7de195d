using Xunit;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Crnn.Kernels.Tests;

/// <summary>
/// The devices every kernel test runs on, opened once per test run:
/// <list type="bullet">
/// <item><see cref="Default"/>: whatever CRNN_TEST_DEVICE (default cpu) and CRNN_KERNELS (default auto) name —
/// the CPU accelerator with the host policy, or a GPU / OpenCL device with the gpu policy;</item>
/// <item><see cref="GpuLike"/>: the CPU accelerator shaped like a GPU (32-wide warps, 256-thread groups,
/// 4 groups) running the gpu policy, so shared-memory, barrier, grid-stride-over-groups and partial-sum
/// code runs as a GPU runs it, on every machine.</item>
/// </list>
/// <see cref="Host"/> is the CPU accelerator with the host policy, for tests of the host code alone.
/// </summary>
public static class TestDevices
{
    public const string Default = "default", GpuLike = "gpulike", HostOnly = "host";

    static readonly Lazy<Device> _default = new(() => Device.Open(Environment.GetEnvironmentVariable("CRNN_TEST_DEVICE") is { Length: > 0 } spec ? spec : "cpu"));
    static readonly Lazy<Device> _gpuLike = new(() => Device.OpenCpu(Device.GpuLikeWarp, Device.GpuLikeWarps, Device.GpuLikeGroups, KernelPolicy.Gpu));
    static readonly Lazy<Device> _host = new(() =>
        _default.Value.IsCpu && _default.Value.UsesHost ? _default.Value : Device.Open("cpu", "host"));

    /// <summary>Theory data: both device names.</summary>
    public static TheoryData<string> Names => new() { Default, GpuLike };

    public static Device Get(string name) => name switch
    {
        Default => _default.Value,
        GpuLike => _gpuLike.Value,
        HostOnly => _host.Value,
        _ => throw new ArgumentException($"unknown test device {name}"),
    };

    /// <summary>The CPU accelerator under the host policy (the default device itself when it is that).</summary>
    public static Device Host => _host.Value;
}
