using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>
/// The final 2×2 max pool on conv2's output [32,480,2,50] → [32,480,1,25], and the squeeze-excite
/// pieces at unit 11's depthwise output [32,336,4,50]: global average pool → [32,336], channel scale,
/// and their backwards. Throughput is the bytes each call reads and writes once.
/// </summary>
public class PoolingBenchmarks : IWork
{
    const int Batch = 32;
    static readonly PoolShape Max = Pooling.MaxPoolShape(Batch, 480, 2, 50, 2);
    const int SeChannels = 336, SeSpatial = 4 * 50, SeRows = Batch * SeChannels, SeLength = SeRows * SeSpatial;

    Device _device = null!;
    Pooling _pool = null!;
    ChannelScale _scale = null!;
    Tensor<float> _x = null!, _y = null!, _dy = null!, _dx = null!, _s = null!, _ds = null!;
    Tensor<int> _indices = null!;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _pool = new Pooling(_device);
        _scale = new ChannelScale(_device);
        int n = Math.Max(Max.InputLength, SeLength);
        _x = _device.Allocate(n); _y = _device.Allocate(n); _dy = _device.Allocate(n); _dx = _device.Allocate(n);
        _s = _device.Allocate(SeRows); _ds = _device.Allocate(SeRows);
        _indices = _device.Allocate<int>(Max.OutputLength);
        _x.Fill(1.5f); _dy.Fill(0.25f); _s.Fill(0.5f);
        MaxPoolForward();
    }

    [Benchmark]
    public void MaxPoolForward()
    {
        _pool.MaxPoolForward(_x.View.SubView(0, Max.InputLength), _y.View.SubView(0, Max.OutputLength), _indices.View, Max);
        _device.Synchronize();
    }

    [Benchmark]
    public void MaxPoolBackward()
    {
        _pool.MaxPoolBackward(_dy.View.SubView(0, Max.OutputLength), _indices.View, _dx.View.SubView(0, Max.InputLength), Max);
        _device.Synchronize();
    }

    /// <summary>SE forward: squeeze, then (after the SE MLP, not measured here) excite.</summary>
    [Benchmark]
    public void SePoolAndScaleForward()
    {
        _pool.GlobalAveragePoolForward(_x.View.SubView(0, SeLength), _s.View, Batch, SeChannels, SeSpatial);
        _scale.Forward(_x.View.SubView(0, SeLength), _s.View, _y.View.SubView(0, SeLength), Batch, SeChannels, SeSpatial);
        _device.Synchronize();
    }

    /// <summary>SE backward: scale gradient, then the pool's gradient added onto dx.</summary>
    [Benchmark]
    public void SePoolAndScaleBackward()
    {
        _scale.Backward(_x.View.SubView(0, SeLength), _s.View, _dy.View.SubView(0, SeLength), _dx.View.SubView(0, SeLength), _ds.View,
            Batch, SeChannels, SeSpatial);
        _pool.GlobalAveragePoolBackward(_ds.View, _dx.View.SubView(0, SeLength), Batch, SeChannels, SeSpatial, accumulate: true);
        _device.Synchronize();
    }

    public (double Flops, double Bytes) Work(string method) => method switch
    {
        nameof(MaxPoolForward) => (0, 4.0 * (Max.InputLength + 2 * Max.OutputLength)),
        nameof(MaxPoolBackward) => (0, 4.0 * (Max.InputLength + 2 * Max.OutputLength)),
        // pool reads x; scale reads x, writes y
        nameof(SePoolAndScaleForward) => (0, 4.0 * 3 * SeLength),
        // ds reads x, dy; dx reads dy, writes dx; accumulate reads and writes dx
        _ => (0, 4.0 * 6 * SeLength),
    };

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _x, _y, _dy, _dx, _s, _ds }) t.Dispose();
        _indices.Dispose();
    }
}
