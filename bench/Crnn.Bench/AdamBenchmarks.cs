using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>One Adam(W) step over the seed model's whole parameter buffer (about 1.45 M parameters), plain and
/// with the clipping scale read from the device.</summary>
public class AdamBenchmarks : IWork
{
    public const int Parameters = 1_450_000;

    Device _device = null!;
    Adam _adam = null!;
    Tensor<float> _p = null!, _g = null!, _m = null!, _v = null!, _scale = null!;
    int _step;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _adam = new Adam(_device);
        _p = _device.Allocate(Parameters);
        _g = _device.Allocate(Parameters);
        _m = _device.Allocate(Parameters);
        _v = _device.Allocate(Parameters);
        _scale = _device.Upload(new[] { 0.5f }, 1);
        _p.Fill(0.1f); _g.Fill(0.01f); _m.Clear(); _v.Clear();
    }

    [Benchmark]
    public void AdamStep()
    {
        _adam.Step(_p.View, _g.View, _m.View, _v.View, AdamOptions.Adam(5e-4f), ++_step);
        _device.Synchronize();
    }

    [Benchmark]
    public void AdamWStepScaled()
    {
        _adam.Step(_p.View, _g.View, _m.View, _v.View, AdamOptions.AdamW(5e-4f), ++_step, _scale.View);
        _device.Synchronize();
    }

    /// <summary>Reads p, g, m, v and writes p, m, v.</summary>
    public (double Flops, double Bytes) Work(string method) => (0, 7.0 * sizeof(float) * Parameters);

    [GlobalCleanup]
    public void Cleanup()
    {
        _adam.Dispose();
        _p.Dispose(); _g.Dispose(); _m.Dispose(); _v.Dispose(); _scale.Dispose();
    }
}
