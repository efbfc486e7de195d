using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>
/// Batch norm at batch 32 on the seed model's widest and longest activations: conv2's output
/// [32,480,2,50] (many short channels) and conv1's [32,8,16,50] (few long channels).
/// Throughput counts the passes the kernels make: forward reads x three times and writes y,
/// backward reads x and dy twice each and writes dx.
/// </summary>
public class BatchNormBenchmarks : IWork
{
    Device _device = null!;
    BatchNorm _bn = null!;
    Tensor<float> _x = null!, _y = null!, _dy = null!, _dx = null!;
    Tensor<float> _gamma = null!, _beta = null!, _mean = null!, _invStd = null!, _runMean = null!, _runVar = null!, _dgamma = null!, _dbeta = null!;

    /// <summary>Channels x H x W of the activation (batch 32).</summary>
    [Params("480x2x50", "8x16x50")]
    public string Shape { get; set; } = "480x2x50";

    /// <summary>Grouped (GPU shape) against per-thread (CPU shape) and the host SIMD code (CPU accelerator only);
    /// Auto picks per device.</summary>

    int Channels => int.Parse(Shape.Split('x')[0]);
    int Spatial => int.Parse(Shape.Split('x')[1]) * int.Parse(Shape.Split('x')[2]);
    const int Batch = 32;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _bn = new BatchNorm(_device);
        int n = Batch * Channels * Spatial;
        _x = _device.Allocate(n); _y = _device.Allocate(n); _dy = _device.Allocate(n); _dx = _device.Allocate(n);
        _x.Fill(1.5f); _dy.Fill(0.25f);
        _gamma = _device.Allocate(Channels); _beta = _device.Allocate(Channels);
        _mean = _device.Allocate(Channels); _invStd = _device.Allocate(Channels);
        _runMean = _device.Allocate(Channels); _runVar = _device.Allocate(Channels);
        _dgamma = _device.Allocate(Channels); _dbeta = _device.Allocate(Channels);
        _gamma.Fill(1f); _beta.Fill(0f); _runMean.Fill(0f); _runVar.Fill(1f);
        ForwardTraining();
    }

    [Benchmark]
    public void ForwardTraining()
    {
        _bn.ForwardTraining(_x.View, _gamma.View, _beta.View, _y.View, _mean.View, _invStd.View, _runMean.View, _runVar.View,
            Batch, Channels, Spatial);
        _device.Synchronize();
    }

    [Benchmark]
    public void Backward()
    {
        _bn.Backward(_x.View, _dy.View, _gamma.View, _mean.View, _invStd.View, _dx.View, _dgamma.View, _dbeta.View,
            Batch, Channels, Spatial);
        _device.Synchronize();
    }

    public (double Flops, double Bytes) Work(string method) =>
        (0, (method == nameof(Backward) ? 5.0 : 4.0) * 4 * Batch * Channels * Spatial);

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _x, _y, _dy, _dx, _gamma, _beta, _mean, _invStd, _runMean, _runVar, _dgamma, _dbeta }) t.Dispose();
    }
}
