using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>The global gradient norm over the seed model's parameter count, and a full clip (norm + scale).</summary>
public class GradientNormBenchmarks : IWork
{
    Device _device = null!;
    GradientNorm _norm = null!;
    Tensor<float> _g = null!;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _norm = new GradientNorm(_device);
        _g = _device.Allocate(AdamBenchmarks.Parameters);
        _g.Fill(1e-3f);
    }

    [Benchmark]
    public void Norm()
    {
        _norm.Compute(_g.View, 5f);
        _device.Synchronize();
    }

    /// <summary>Under the maximum (scale 1), so repeated runs see the same data.</summary>
    [Benchmark]
    public void Clip()
    {
        _norm.Clip(_g.View, 5f);
        _device.Synchronize();
    }

    /// <summary>Norm reads the gradients once; Clip reads them twice and writes them once.</summary>
    public (double Flops, double Bytes) Work(string method) =>
        (0, (method == nameof(Clip) ? 3.0 : 1.0) * sizeof(float) * AdamBenchmarks.Parameters);

    [GlobalCleanup]
    public void Cleanup() { _norm.Dispose(); _g.Dispose(); }
}
