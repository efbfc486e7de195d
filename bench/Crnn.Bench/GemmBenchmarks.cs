using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>
/// The GEMM at the seed model's largest 1×1 convolution (expand 80→480 over 2×50 positions, batch 32,
/// as a batched product) and the LSTM input projection (32·25 rows, 480 → 4·96·2), under the bench
/// device's kernel policy: the host product (host) or the tiled kernel (gpu).
/// </summary>
public class GemmBenchmarks : IWork
{
    Device _device = null!;
    Gemm _gemm = null!;
    Tensor<float> _a = null!, _b = null!, _c = null!;
    GemmShape _conv, _lstm;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _gemm = new Gemm(_device);
        _conv = GemmShape.RowMajor(480, 100, 80).Batched(32, 0, 80 * 100, 480 * 100);
        _lstm = GemmShape.RowMajor(32 * 25, 768, 480, transB: true);
        _a = _device.Allocate(1 << 20);
        _b = _device.Allocate(1 << 20);
        _c = _device.Allocate(2 << 20);
        _a.Fill(0.5f); _b.Fill(0.25f);
    }

    [Benchmark]
    public void Conv1x1Expand()
    {
        _gemm.Run(_a.View, _b.View, _c.View, _conv);
        _device.Synchronize();
    }

    [Benchmark]
    public void LstmInputProjection()
    {
        _gemm.Run(_a.View, _b.View, _c.View, _lstm);
        _device.Synchronize();
    }

    public (double Flops, double Bytes) Work(string method) => method switch
    {
        nameof(Conv1x1Expand) => (GemmShape.RowMajor(480, 100, 80).Batched(32, 0, 0, 0).Flops, 0),
        _ => (GemmShape.RowMajor(32 * 25, 768, 480).Flops, 0),
    };

    [GlobalCleanup]
    public void Cleanup() { _a.Dispose(); _b.Dispose(); _c.Dispose(); }
}
