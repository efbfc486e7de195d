using System.Runtime.InteropServices;
using Xunit;

namespace Crnn.Kernels.Tests;

/// <summary>A failed device allocation is a <see cref="DeviceMemoryException"/> naming its size in MiB.</summary>
public class DeviceMemoryTests
{
    /// <summary>A 1 MiB element: 2^31 − 1 of them ask the accelerator for 2 PiB, which no allocator grants
    /// (beyond the address space), so the real allocation failure happens without touching memory.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 1 << 20)]
    struct Mebibyte { public byte First; }

    [Fact]
    public void AnAllocationTheAcceleratorRefusesIsOutOfDeviceMemory()
    {
        using var device = Device.Open("cpu");
        var e = Assert.Throws<DeviceMemoryException>(() => device.Allocate<Mebibyte>(int.MaxValue));
        Assert.Equal($"out of device memory allocating {int.MaxValue} MiB", e.Message);
        Assert.Equal((long)int.MaxValue << 20, e.Bytes);
        Assert.True(e.InnerException is OutOfMemoryException or ILGPU.Runtime.AcceleratorException, e.InnerException?.GetType().Name);

        // The device still works afterwards.
        using var small = device.Allocate(7);
        small.Fill(2f);
        Assert.Equal(Enumerable.Repeat(2f, 7), small.ToHost());
    }

    [Fact]
    public void ATensorOverTwoToThe31ElementsIsRefusedWithItsSize()
    {
        using var device = Device.Open("cpu");
        var e = Assert.Throws<DeviceMemoryException>(() => device.Allocate(1 << 16, 1 << 15, 2));
        Assert.Equal("cannot allocate 16384 MiB on the device: one tensor may hold at most 2^31 elements", e.Message);
        Assert.Equal("cannot allocate 16384 MiB on the device: one tensor may hold at most 2^31 elements (batch 9); try a smaller --batch-size",
            e.ForBatch(9).Message);
    }
}
