using BenchmarkDotNet.Attributes;
using Crnn.Engine;
using Crnn.Engine.Data;
using Crnn.Engine.Training;

namespace Crnn.Bench;

/// <summary>
/// One full training step of the seed model (synthetic batch, forward, CTC, backward, Adam) at batch 32.
/// The per-layer-family breakdown comes from `crnn bench` (see bench/README.md).
/// </summary>
public class TrainingStepBenchmarks : IWork
{
    const int Batch = 32;
    CrnnModel _model = null!;
    SyntheticSource _source = null!;
    Trainer _trainer = null!;

    [GlobalSetup]
    public void Setup()
    {
        _model = new CrnnModel(BenchDevice.Get(), new ModelConfig());
        _model.Initialize(seed: 1);
        _source = new SyntheticSource(CharDictionary.Default, seed: 1);
        _trainer = new Trainer(_model, CharDictionary.Default, _source, new TrainOptions { Steps = int.MaxValue, BatchSize = Batch },
            Path.GetTempPath(), validation: null);
    }

    [Benchmark]
    public void TrainStepBatch32()
    {
        _trainer.TrainStep();
        _model.Device.Synchronize();
    }

    /// <summary>About 3 × 2 × 70 M multiply-adds per image (forward, and a backward of twice its cost).</summary>
    public (double Flops, double Bytes) Work(string method) => (Batch * 3 * 2 * 70e6, 0);

    [GlobalCleanup]
    public void Cleanup()
    {
        _trainer.Dispose();
        _source.Dispose();
        _model.Dispose();
    }
}
