namespace Crnn.Engine.Synthetic;

/// <summary>What the synthetic generator draws from. The defaults are the training data of `crnn train`.</summary>
public sealed record SyntheticOptions
{
    /// <summary>Font folders, files or glob patterns (<c>*</c>, <c>?</c>, <c>**</c>); empty: every installed font
    /// except the held-out family (<see cref="FontCatalog.HeldOutPattern"/>).</summary>
    public IReadOnlyList<string> Fonts { get; init; } = [];

    /// <summary>Glob patterns of fonts never to use; a pattern with a '/' matches the full path, else the file name.</summary>
    public IReadOnlyList<string> ExcludeFonts { get; init; } = [];

    /// <summary>Share of samples that are dictionary words; the rest are random letter/digit strings.</summary>
    public double WordRatio { get; init; } = 0.7;

    /// <summary>The effects (<see cref="Effects"/>); off gives plain dark text on a light background.</summary>
    public bool Augment { get; init; } = true;

    /// <summary>How often each effect applies when <see cref="Augment"/> is on.</summary>
    public SyntheticEffects Effects { get; init; } = SyntheticEffects.Default;

    /// <summary>The effects in force: <see cref="Effects"/>, or none when augmentation is off.</summary>
    public SyntheticEffects ActiveEffects => Augment ? Effects : SyntheticEffects.None;

    /// <summary>Where warnings about skipped fonts go (default: standard error).</summary>
    public Action<string>? Log { get; init; }

    public static SyntheticOptions Default { get; } = new();

    public void Validate()
    {
        if (!(WordRatio >= 0 && WordRatio <= 1)) throw new ArgumentException($"the word ratio must be in [0, 1], got {WordRatio}");
        Effects.Validate();
    }
}
