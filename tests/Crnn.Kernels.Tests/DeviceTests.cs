using Xunit;

namespace Crnn.Kernels.Tests;

public class DeviceTests
{
    [Theory]
    [InlineData("cpu", "cpu", 0)]
    [InlineData("CUDA:1", "cuda", 1)]
    [InlineData(" opencl ", "opencl", 0)]
    [InlineData("cl:2", "opencl", 2)]
    public void ParsesDeviceSpecs(string spec, string kind, int index) =>
        Assert.Equal((kind, index), Device.ParseSpec(spec));

    [Theory]
    [InlineData("tpu")]
    [InlineData("cuda:x")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:0:1")]
    public void RejectsBadSpecsWithAClearMessage(string spec)
    {
        var e = Assert.Throws<DeviceException>(() => Device.Open(spec));
        Assert.Contains(spec, e.Message);
    }

    [Fact]
    public void OpensTheCpuWhenAsked()
    {
        using var device = Device.Open("cpu");
        Assert.True(device.IsCpu);
        Assert.Contains("--device=cpu", device.Reason);
    }

    [Fact]
    public void KernelPolicyIsDecidedWhenTheDeviceOpens()
    {
        using (var host = Device.Open("cpu", "auto")) Assert.Equal(KernelPolicy.Host, host.Policy);
        using (var host = Device.Open(null, "host")) Assert.True(host.IsCpu && host.UsesHost);
        // gpu on the CPU accelerator: the GPU-like shape the GPU kernels need.
        using var gpu = Device.Open("cpu", " GPU ");
        Assert.Equal(KernelPolicy.Gpu, gpu.Policy);
        Assert.Equal((256, Device.GpuLikeGroups), (gpu.GroupSize, gpu.MaxGroups));
        Assert.Contains("gpu kernels", gpu.ToString());
    }

    [Theory]
    [InlineData("cuda", "host", "--kernels host runs only on the CPU accelerator")]
    [InlineData("cpu", "simd", "--kernels 'simd' is not a kernel policy")]
    public void RejectsImpossiblePolicies(string device, string kernels, string message) =>
        Assert.Contains(message, Assert.Throws<DeviceException>(() => Device.Open(device, kernels)).Message);

    [Fact]
    public void MissingIndexSaysHowManyThereAre()
    {
        var e = Assert.Throws<DeviceException>(() => Device.Open("cpu:5"));
        Assert.Contains("only 1 cpu device", e.Message);
    }

    [Fact]
    public void GridStrideNeverExceedsTheDeviceOrTheWork()
    {
        using var device = Device.OpenCpu(32, 8, 3, KernelPolicy.Gpu);
        Assert.Equal(256, device.GroupSize);
        Assert.Equal(3, device.MaxGroups);
        var small = device.GridStride(10);
        Assert.Equal(1, small.GridDim.X);
        Assert.Equal(256, small.GroupDim.X);
        Assert.Equal(3, device.GridStride(1_000_000).GridDim.X);
        Assert.Equal(1, device.GridStride(0).GridDim.X);
    }

    [Fact]
    public void ListsAtLeastTheCpu()
    {
        var cpu = Assert.Single(Device.List(), d => d.Kind == "cpu");
        Assert.True(cpu.MemoryBytes > 0 && cpu.MemoryBytes < (1L << 50));
    }

    [Fact]
    public void TensorSlicesShareMemoryAndCheckBounds()
    {
        var device = TestDevices.Get(TestDevices.Default);
        using var t = device.Upload(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var slice = t.Slice(2, 2, 2);
        Assert.Equal(new float[] { 3, 4, 5, 6 }, slice.ToHost());
        slice.Fill(0);
        Assert.Equal(new float[] { 1, 2, 0, 0, 0, 0 }, t.ToHost());
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Slice(4, 3));
        Assert.Throws<ArgumentException>(() => t.Reshape(4, 2));
        Assert.Throws<ArgumentException>(() => t.CopyFrom(new float[5]));
    }
}
