using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>
/// One bidirectional LSTM layer of the seed model's neck, T = 25, hidden 96: layer 1 reads the backbone's
/// 480 channels, layer 2 the first layer's 192 outputs. Batch 32 (benchmark default) and 256 (training).
/// </summary>
public class LstmBenchmarks : IWork
{
    const int Steps = 25, Hidden = 96;

    [Params(32, 256)] public int Batch { get; set; }
    [Params(480, 192)] public int Input { get; set; }

    Device _device = null!;
    Lstm _lstm = null!;
    LstmShape _s;
    Tensor<float> _p = null!, _x = null!, _y = null!, _saved = null!, _dy = null!, _dx = null!, _dp = null!, _scratch = null!;

    LstmShape Shape => new(Batch, Steps, Input, Hidden);

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _lstm = new Lstm(_device);
        _s = Shape;
        _p = _device.Allocate(_s.ParameterCount);
        _x = _device.Allocate(_s.InputLength);
        _y = _device.Allocate(_s.OutputLength);
        _saved = _device.Allocate(_s.SavedLength);
        _dy = _device.Allocate(_s.OutputLength);
        _dx = _device.Allocate(_s.InputLength);
        _dp = _device.Allocate(_s.ParameterCount);
        _scratch = _device.Allocate(_s.ScratchLength);
        _p.Fill(0.01f); _x.Fill(0.5f); _dy.Fill(0.25f);
        Forward(); // backward reads what forward saved
    }

    [Benchmark]
    public void Forward()
    {
        _lstm.Forward(_s, _p.View, _x.View, _y.View, _saved.View);
        _device.Synchronize();
    }

    [Benchmark]
    public void Backward()
    {
        _lstm.Backward(_s, _p.View, _x.View, _y.View, _saved.View, _dy.View, _dx.View, _dp.View, _scratch.View);
        _device.Synchronize();
    }

    /// <summary>Multiply-adds of the products: input projection (B·T × In × 8H) and recurrence (B·T × H × 8H);
    /// backward has two of each (data and weight gradients).</summary>
    public (double Flops, double Bytes) Work(string method)
    {
        var s = Shape;
        double forward = 2.0 * s.Batch * s.Steps * 2 * s.Gates * (s.Input + s.Hidden);
        return (method == nameof(Backward) ? 2 * forward : forward, 0);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _p, _x, _y, _saved, _dy, _dx, _dp, _scratch }) t.Dispose();
    }
}
