using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary><see cref="GroupedConv"/> at depthwise layers' shapes, batch 32: unit 12's 5×5 stride (2,1) (336 channels, 4×50 → 2×50) and unit 6's
/// 3×3 stride 1 (120 channels at 4×50). Memory-bound, so the throughput is GB/s of x, w and y.</summary>
public class DepthwiseConvBenchmarks : IWork
{
    [Params("k5s21c336", "k3s11c120")]
    public string Layer { get; set; } = "k5s21c336";


    ConvShape Shape => Layer == "k5s21c336"
        ? ConvShape.Depthwise(32, 336, 4, 50, 5, 2, 1)
        : ConvShape.Depthwise(32, 120, 4, 50, 3, 1, 1);

    Device _device = null!;
    GroupedConv _conv = null!;
    Tensor<float> _x = null!, _w = null!, _y = null!;
    ConvShape _shape;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _conv = new GroupedConv(_device);
        _shape = Shape;
        _x = _device.Allocate(_shape.InputLength);
        _w = _device.Allocate(_shape.WeightLength);
        _y = _device.Allocate(_shape.OutputLength);
        _x.Fill(0.5f); _w.Fill(0.25f); _y.Fill(0.125f);
    }

    [Benchmark] public void Forward() { _conv.Forward(_x.View, _w.View, _y.View, _shape); _device.Synchronize(); }
    [Benchmark] public void BackwardData() { _conv.BackwardData(_y.View, _w.View, _x.View, _shape); _device.Synchronize(); }
    [Benchmark] public void BackwardWeight() { _conv.BackwardWeight(_y.View, _x.View, _w.View, _shape); _device.Synchronize(); }

    public (double Flops, double Bytes) Work(string method)
    {
        var s = Shape;
        return (0, 4.0 * (s.InputLength + s.OutputLength + s.WeightLength));
    }

    [GlobalCleanup]
    public void Cleanup() { _x.Dispose(); _w.Dispose(); _y.Dispose(); }
}
