using System.CommandLine;
using Crnn.Kernels;

namespace Crnn.Cli;

/// <summary><c>crnn devices</c>: every accelerator ILGPU can see, its limits, and which one training would use.</summary>
public static class DevicesCommand
{
    public static Command Create()
    {
        var deviceOption = new Option<string?>("--device")
        {
            Description = "Device to select: cpu, cuda or opencl, optionally :index (default: $CRNN_DEVICE, else CUDA > OpenCL > CPU)",
        };
        var command = new Command("devices", "List the accelerators and their limits, and show which one would be used.");
        command.Options.Add(deviceOption);
        command.SetAction(parse => Run(parse.GetValue(deviceOption), Console.Out));
        return command;
    }

    public static int Run(string? spec, TextWriter output)
    {
        foreach (var d in Device.List())
        {
            output.WriteLine($"{d.Kind,-7} {d.Name}");
            output.WriteLine($"        memory {d.MemoryBytes / (1024.0 * 1024 * 1024):F1} GiB, {d.Multiprocessors} multiprocessors, warp {d.WarpSize}, " +
                             $"{d.MaxThreadsPerGroup} threads/group, {d.MaxThreadsPerMultiprocessor} threads/multiprocessor, " +
                             $"{d.MaxSharedMemoryPerGroup / 1024} KiB shared/group{(d.Usable ? "" : " (unusable: no generic address space)")}");
        }
        try
        {
            using var chosen = Device.Open(spec);
            output.WriteLine($"selected: {chosen}");
            return 0;
        }
        catch (DeviceException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}
