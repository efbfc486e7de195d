// Fine-tunes a model from code with the Crnn.Gpu package: dotnet run -- MODEL_DIR OUTPUT_DIR [STEPS] [LABELS]
// Without LABELS (a PaddleOCR label file: image_path<TAB>text) it trains on the built-in synthetic words.
// Ctrl-C stops after the current step and saves a checkpoint, as `crnn train` does.
using Crnn.Engine.Training;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: FineTune MODEL_DIR OUTPUT_DIR [STEPS] [LABELS]");
    return 2;
}
int steps = args.Length > 2 ? int.Parse(args[2]) : 200;
var settings = TrainingSettings.SyntheticWords(args[1], new TrainOptions { Steps = steps, BatchSize = 8, LearningRate = 1e-4f, LogEvery = 10, ValidateEvery = 100 })
    with { Init = args[0], ValCount = 64, Train = args.Length > 3 ? [args[3]] : [] };

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
using var job = TrainingJob.Open(settings, Console.Out);
job.Run(new Progress<StepReport>(r => Console.WriteLine(
    $"step {r.Step}: loss {r.Loss:F3}{(r.ValAccuracy is { } a ? $", validation accuracy {a:P1}" : "")}")), cancel.Token);
Console.WriteLine($"checkpoint: {args[1]} (step {job.Trainer.Step})");
return 0;
