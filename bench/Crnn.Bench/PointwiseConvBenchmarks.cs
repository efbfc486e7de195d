using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>conv2, the largest 1×1 convolution: 80→480 over 2×50 at batch 32, each pass one batched GEMM.</summary>
public class PointwiseConvBenchmarks : IWork
{
    static readonly PointwiseShape Shape = new(32, 80, 480, 2 * 50);
    Device _device = null!;
    PointwiseConv _conv = null!;
    Tensor<float> _x = null!, _w = null!, _y = null!;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _conv = new PointwiseConv(_device);
        _x = _device.Allocate(Shape.InputLength);
        _w = _device.Allocate(Shape.WeightLength);
        _y = _device.Allocate(Shape.OutputLength);
        _x.Fill(0.5f); _w.Fill(0.25f); _y.Fill(0.125f);
    }

    [Benchmark] public void Conv2Forward() { _conv.Forward(_x.View, _w.View, _y.View, Shape); _device.Synchronize(); }
    [Benchmark] public void Conv2BackwardData() { _conv.BackwardData(_y.View, _w.View, _x.View, Shape); _device.Synchronize(); }
    [Benchmark] public void Conv2BackwardWeight() { _conv.BackwardWeight(_y.View, _x.View, _w.View, Shape); _device.Synchronize(); }

    public (double Flops, double Bytes) Work(string method) => (2.0 * Shape.MultiplyAdds, 0);

    [GlobalCleanup]
    public void Cleanup() { _x.Dispose(); _w.Dispose(); _y.Dispose(); }
}
