using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>Element-wise activations at batch 32 on conv2's output [32,480,2,50] (1.5 M elements): hardswish
/// forward and backward, the residual add. Memory-bound: GB/s of the tensors read and written.</summary>
public class ActivationBenchmarks : IWork
{
    const int N = 32 * 480 * 2 * 50;


    Device _device = null!;
    Activations _acts = null!;
    Tensor<float> _x = null!, _y = null!, _dy = null!;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _acts = new Activations(_device);
        _x = _device.Allocate(N); _y = _device.Allocate(N); _dy = _device.Allocate(N);
        _x.Fill(0.5f); _dy.Fill(0.25f);
    }

    [Benchmark] public void HardSwishForward() { _acts.Forward(Activation.HardSwish, _x.View, _y.View); _device.Synchronize(); }
    [Benchmark] public void HardSwishBackward() { _acts.Backward(Activation.HardSwish, _x.View, _dy.View, _y.View); _device.Synchronize(); }
    [Benchmark] public void ResidualAdd() { _acts.Add(_x.View, _dy.View, _y.View); _device.Synchronize(); }

    public (double Flops, double Bytes) Work(string method) => (0, (method == nameof(HardSwishForward) ? 2.0 : 3.0) * 4 * N);

    [GlobalCleanup]
    public void Cleanup() { _x.Dispose(); _y.Dispose(); _dy.Dispose(); }
}
