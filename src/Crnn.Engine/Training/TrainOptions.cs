namespace Crnn.Engine.Training;

/// <summary>Training settings: MODEL.md's Adam and learning rate, with a batch that fits a CPU and a schedule
/// that holds the rate, then decays it over the last half (what the synthetic default was measured with).</summary>
public sealed record TrainOptions
{
    public int Steps { get; init; } = 12000;
    public int BatchSize { get; init; } = 32;
    /// <summary>Adam's learning rate (MODEL.md: 0.0005).</summary>
    public float LearningRate { get; init; } = 5e-4f;
    public int Seed { get; init; } = 1;
    /// <summary>Global gradient-norm clipping; null disables it.</summary>
    public float? ClipNorm { get; init; }
    /// <summary>Linear warm-up steps at the start.</summary>
    public int WarmupSteps { get; init; }
    /// <summary>Share of the steps, at the end, over which the rate follows a cosine to zero (0: constant rate).</summary>
    public float DecayFraction { get; init; } = 0.5f;
    public int LogEvery { get; init; } = 10;
    /// <summary>Validation and checkpoint interval in steps (0: only at the end).</summary>
    public int ValidateEvery { get; init; } = 500;
    /// <summary>Consecutive steps with a non-finite loss or gradient norm (each skipped) before training stops.</summary>
    public int MaxBadSteps { get; init; } = 5;

    /// <summary>Largest seed: the validation and sample sets use the seed plus up to 2 000 000.</summary>
    public const int MaxSeed = int.MaxValue - 2_000_000;

    /// <summary>Learning rate at (1-based) <paramref name="step"/>.</summary>
    public float LearningRateAt(long step)
    {
        if (WarmupSteps > 0 && step <= WarmupSteps) return LearningRate * step / WarmupSteps;
        long decayStart = Math.Max(WarmupSteps, Steps - (long)Math.Round(Steps * (double)DecayFraction));
        if (step <= decayStart) return LearningRate;
        double progress = (double)(step - decayStart) / Math.Max(1, Steps - decayStart);
        return (float)(LearningRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress))));
    }

    /// <summary>Throws ArgumentException naming the first invalid setting (one line, for the user).</summary>
    public void Validate()
    {
        if (Steps < 1) throw new ArgumentException($"--steps must be at least 1, got {Steps}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {BatchSize}");
        if (!(LearningRate > 0) || float.IsInfinity(LearningRate)) throw new ArgumentException($"--lr must be a positive number, got {LearningRate}");
        if (Seed < 0 || Seed > MaxSeed) throw new ArgumentException($"--seed must be between 0 and {MaxSeed}, got {Seed}");
        if (ClipNorm is { } c && (!(c > 0) || float.IsInfinity(c))) throw new ArgumentException($"--clip-norm must be a positive number, got {c}");
        if (WarmupSteps < 0 || WarmupSteps > Steps) throw new ArgumentException($"--warmup must be between 0 and --steps ({Steps}), got {WarmupSteps}");
        if (!(DecayFraction >= 0 && DecayFraction <= 1)) throw new ArgumentException($"--decay must be between 0 and 1, got {DecayFraction}");
        if (LogEvery < 1) throw new ArgumentException($"--log-every must be at least 1, got {LogEvery}");
        if (ValidateEvery < 0) throw new ArgumentException($"--val-every must be 0 or more, got {ValidateEvery}");
        if (MaxBadSteps < 1) throw new ArgumentException($"--max-bad-steps must be at least 1, got {MaxBadSteps}");
    }
}
