using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>The CTC head: 192 → 37 classes over every time step of a batch of 32 (32·25 rows).</summary>
public class LinearBenchmarks : IWork
{
    const int Rows = 32 * 25, In = 192, Out = 37;

    Device _device = null!;
    Linear _linear = null!;
    Tensor<float> _x = null!, _w = null!, _b = null!, _y = null!, _dx = null!, _dw = null!, _db = null!;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _linear = new Linear(_device);
        _x = _device.Allocate(Rows * In);
        _w = _device.Allocate(Out * In);
        _b = _device.Allocate(Out);
        _y = _device.Allocate(Rows * Out);
        _dx = _device.Allocate(Rows * In);
        _dw = _device.Allocate(Out * In);
        _db = _device.Allocate(Out);
        _x.Fill(0.5f); _w.Fill(0.25f); _b.Fill(0.1f);
    }

    [Benchmark]
    public void Forward()
    {
        _linear.Forward(_x.View, _w.View, _b.View, _y.View, Rows, In, Out);
        _device.Synchronize();
    }

    [Benchmark]
    public void Backward()
    {
        _linear.Backward(_x.View, _w.View, _y.View, _dx.View, _dw.View, _db.View, Rows, In, Out);
        _device.Synchronize();
    }

    /// <summary>One product forward, two backward (dx and dW).</summary>
    public (double Flops, double Bytes) Work(string method)
    {
        double product = 2.0 * Rows * In * Out;
        return (method == nameof(Backward) ? 2 * product : product, 0);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _x, _w, _b, _y, _dx, _dw, _db }) t.Dispose();
    }
}
