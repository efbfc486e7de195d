using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>Greedy CTC decoding of the seed model's logits [batch, 25, 37], on the device only and with
/// the host-friendly read-back.</summary>
public class GreedyDecoderBenchmarks : IWork
{
    const int Steps = 25, Classes = 37;

    [Params(32, 256)]
    public int Batch { get; set; }

    Device _device = null!;
    GreedyDecoder _decoder = null!;
    Tensor<float> _logits = null!, _confidences = null!;
    Tensor<int> _ids = null!, _lengths = null!;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _decoder = new GreedyDecoder(_device);
        var host = new float[Batch * Steps * Classes];
        var rng = new Random(1);
        for (int i = 0; i < host.Length; i++) host[i] = (float)rng.NextDouble() * 8f - 4f;
        _logits = _device.Upload(host, Batch, Steps, Classes);
        _ids = _device.Allocate<int>(Batch, Steps);
        _lengths = _device.Allocate<int>(Batch);
        _confidences = _device.Allocate(Batch);
    }

    [Benchmark]
    public void Decode()
    {
        _decoder.Decode(_logits.View, Batch, Steps, Classes, _ids.View, _lengths.View, _confidences.View);
        _device.Synchronize();
    }

    [Benchmark]
    public (int[][], float[]) DecodeToHost() => _decoder.Decode(_logits);

    /// <summary>Reads the logits once; writes ids, lengths and confidences (the per-step workspace aside).</summary>
    public (double Flops, double Bytes) Work(string method) =>
        (0, sizeof(float) * ((double)Batch * Steps * Classes + Batch * Steps + 2.0 * Batch));

    [GlobalCleanup]
    public void Cleanup()
    {
        _decoder.Dispose();
        _logits.Dispose(); _ids.Dispose(); _lengths.Dispose(); _confidences.Dispose();
    }
}
