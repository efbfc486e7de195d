using System.CommandLine;
using Crnn.Kernels;

namespace Crnn.Cli;

/// <summary>--device and --kernels, as train, eval, predict and bench take them.</summary>
public sealed record DeviceChoice(string? Device, string? Kernels = null)
{
    /// <summary>A device spec alone (auto kernel policy), as tests and older callers give it.</summary>
    public static implicit operator DeviceChoice(string? device) => new(device);

    public Crnn.Kernels.Device Open() => Crnn.Kernels.Device.Open(Device, Kernels);

    public static Option<string?> DeviceOption() =>
        new("--device") { Description = "cpu, cuda or opencl[:index] (default: $CRNN_DEVICE, else the best available)" };

    public static Option<string?> KernelsOption()
    {
        var option = new Option<string?>("--kernels")
        {
            Description = "kernel policy: auto (host on the CPU, gpu elsewhere), host (SIMD host code, CPU only) or gpu (the GPU kernels, on any device; default: $CRNN_KERNELS, else auto)",
        };
        option.AcceptOnlyFromAmong("auto", "host", "gpu");
        return option;
    }
}
