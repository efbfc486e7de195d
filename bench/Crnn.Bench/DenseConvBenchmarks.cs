using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary><see cref="GroupedConv"/> at the stem conv1's shape (dense 3→8, 3×3, stride (2,2), pad 1, 32×100 → 16×50), batch 32.</summary>
public class DenseConvBenchmarks : IWork
{
    static readonly ConvShape Shape = ConvShape.Dense(32, 3, 32, 100, 8, 3, 2, 2, 1);
    Device _device = null!;
    GroupedConv _conv = null!;
    Tensor<float> _x = null!, _w = null!, _y = null!;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _conv = new GroupedConv(_device);
        _x = _device.Allocate(Shape.InputLength);
        _w = _device.Allocate(Shape.WeightLength);
        _y = _device.Allocate(Shape.OutputLength);
        _x.Fill(0.5f); _w.Fill(0.25f); _y.Fill(0.125f);
    }

    [Benchmark] public void Conv1Forward() { _conv.Forward(_x.View, _w.View, _y.View, Shape); _device.Synchronize(); }
    [Benchmark] public void Conv1BackwardData() { _conv.BackwardData(_y.View, _w.View, _x.View, Shape); _device.Synchronize(); }
    [Benchmark] public void Conv1BackwardWeight() { _conv.BackwardWeight(_y.View, _x.View, _w.View, Shape); _device.Synchronize(); }

    /// <summary>Nominal 2·multiply-adds (padding taps included), the same for all three passes.</summary>
    public (double Flops, double Bytes) Work(string method) =>
        (2.0 * Shape.OutputLength * Shape.InChannels * Shape.Kernel * Shape.Kernel, 0);

    [GlobalCleanup]
    public void Cleanup() { _x.Dispose(); _w.Dispose(); _y.Dispose(); }
}
