using BenchmarkDotNet.Attributes;
using Crnn.Kernels;

namespace Crnn.Bench;

/// <summary>
/// CTC loss + gradient at the seed model's head: T = 25 steps, 37 classes (0-9a-z + blank), labels of
/// about 10 symbols, at batch 32 and the training batch 256; and PaddleOCR's 6 625-class Chinese dictionary
/// at batch 32.
/// </summary>
public class CtcBenchmarks : IWork
{
    const int Time = 25;

    Device _device = null!;
    Ctc _ctc = null!;
    CtcWorkspace _workspace = null!;
    Tensor<float> _logits = null!, _loss = null!, _gradient = null!;
    Tensor<int> _labels = null!, _lengths = null!;

    /// <summary>batch x classes.</summary>
    [Params("32x37", "256x37", "32x6625")]
    public string Case { get; set; } = "32x37";

    int Batch => int.Parse(Case.Split('x')[0]);
    int Classes => int.Parse(Case.Split('x')[1]);

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Get();
        _ctc = new Ctc(_device);
        int batch = Batch, classes = Classes;
        var rng = new Random(1);
        var logits = new float[batch * Time * classes];
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)(rng.NextDouble() * 6 - 3);
        var lengths = new int[batch];
        var labels = new List<int>();
        for (int b = 0; b < batch; b++)
        {
            lengths[b] = rng.Next(8, 13);
            for (int j = 0; j < lengths[b]; j++) labels.Add(rng.Next(1, classes));
        }
        _workspace = _ctc.CreateWorkspace(batch, Time, classes);
        _logits = _device.Upload(logits, logits.Length);
        _labels = _device.Upload(labels.ToArray(), labels.Count);
        _lengths = _device.Upload(lengths, batch);
        _loss = _device.Allocate(batch);
        _gradient = _device.Allocate(logits.Length);
    }

    [Benchmark]
    public void LossAndGradient()
    {
        _ctc.LossAndGradient(_logits.View, _labels.View, _lengths.View, _loss.View, _gradient.View, _workspace);
        _device.Synchronize();
    }

    /// <summary>The logits-sized traffic: read the logits, write and read the log-probabilities, write the gradient.</summary>
    public (double Flops, double Bytes) Work(string method) => (0, 4.0 * Batch * Time * Classes * sizeof(float));

    [GlobalCleanup]
    public void Cleanup()
    {
        _workspace.Dispose(); _logits.Dispose(); _labels.Dispose(); _lengths.Dispose(); _loss.Dispose(); _gradient.Dispose();
    }
}
