using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Crnn.Engine.Data;

/// <summary>
/// A labelled image dataset: texts and labels are checked when it opens (entries the dictionary cannot encode
/// or the model cannot align are left out, see <see cref="Skipped"/>); images are decoded on demand, so a bad
/// image shows up only when it is read.
/// </summary>
public interface ILabeledDataset : IDisposable
{
    /// <summary>Where the data comes from (a path), for messages.</summary>
    string Name { get; }

    /// <summary>Usable samples.</summary>
    int Count { get; }

    /// <summary>Text of sample <paramref name="index"/>, after the case mode.</summary>
    string Text(int index);

    /// <summary>Class ids of <see cref="Text"/>.</summary>
    int[] Label(int index);

    /// <summary>Where sample <paramref name="index"/> lives (file and line, or LMDB key), for messages.</summary>
    string Describe(int index);

    /// <summary>Decodes image <paramref name="index"/> to RGB (the caller disposes it); a missing, empty or
    /// undecodable image throws <see cref="InvalidDataException"/> naming it.</summary>
    Image<Rgb24> Load(int index);

    /// <summary>Entries left out when the dataset was opened, with reasons.</summary>
    SkipList Skipped { get; }
}

public static class LabeledDatasets
{
    /// <summary>Decodes and preprocesses image <paramref name="index"/> into CHW floats [3, H, W] of
    /// <paramref name="format"/> (default: the seed model's 32 × 100 RGB).</summary>
    public static void Decode(this ILabeledDataset data, int index, Span<float> chw, ImageFormat? format = null)
    {
        using var image = data.Load(index);
        (format ?? ImageFormat.Seed).Write(image, chw);
    }
}

/// <summary>How label texts are cased (normalised) before they are checked against the dictionary and encoded.</summary>
public enum LabelCase
{
    /// <summary>Lower-case when the dictionary has no upper-case letter (e.g. the default 0-9a-z), else keep.</summary>
    Auto,
    Keep,
    Lower,
    /// <summary>The scene-text benchmark convention (<see cref="Training.RecognitionMetrics.BenchmarkText"/>: lower-case
    /// ASCII letters and digits only), so "03/09/2009" is read as "03092009" instead of skipped for its '/'. Not a
    /// <c>--case</c> choice: <c>crnn eval --benchmark-convention</c> uses it.</summary>
    Benchmark,
}

public static class LabelCases
{
    public static readonly string[] Names = ["auto", "keep", "lower"];

    public static LabelCase Parse(string name) => name.ToLowerInvariant() switch
    {
        "auto" => LabelCase.Auto,
        "keep" => LabelCase.Keep,
        "lower" => LabelCase.Lower,
        _ => throw new ArgumentException($"unknown case mode '{name}' (auto, keep or lower)"),
    };

    /// <summary>Keep or Lower: what <see cref="LabelCase.Auto"/> means for this dictionary; other modes unchanged.</summary>
    public static LabelCase Resolve(this LabelCase mode, CharDictionary dictionary) =>
        mode != LabelCase.Auto ? mode : dictionary.HasUpperCaseLetters ? LabelCase.Keep : LabelCase.Lower;

    /// <summary>The text as the model is trained or scored on it; call on a resolved mode.</summary>
    public static string Apply(this LabelCase mode, string text) => mode switch
    {
        LabelCase.Lower => text.ToLowerInvariant(),
        LabelCase.Benchmark => Training.RecognitionMetrics.BenchmarkText(text),
        _ => text,
    };
}

/// <summary>
/// Entries left out of a dataset: a count per reason and the first <see cref="KeptExamples"/> in full (an LMDB
/// of millions can skip millions). With <c>strict</c> the first one is an error instead.
/// </summary>
public sealed class SkipList(bool strict = false)
{
    public const int KeptExamples = 100;

    readonly List<string> _examples = [];
    readonly SortedDictionary<string, int> _byReason = new(StringComparer.Ordinal);

    public bool Strict => strict;
    public int Count { get; private set; }
    /// <summary>"where: detail" of the first skipped entries.</summary>
    public IReadOnlyList<string> Examples => _examples;
    public IReadOnlyDictionary<string, int> ByReason => _byReason;

    /// <param name="where">file:line or LMDB key</param>
    /// <param name="reason">short category, counted ("symbol not in the dictionary")</param>
    /// <param name="detail">the full explanation</param>
    public void Add(string where, string reason, string detail)
    {
        if (strict) throw new InvalidDataException($"{where}: {detail} (--strict stops at the first bad sample)");
        Count++;
        _byReason[reason] = _byReason.GetValueOrDefault(reason) + 1;
        if (_examples.Count < KeptExamples) _examples.Add($"{where}: {detail}");
    }

    public void AddRange(SkipList other)
    {
        Count += other.Count;
        foreach (var (reason, n) in other._byReason) _byReason[reason] = _byReason.GetValueOrDefault(reason) + n;
        foreach (var example in other._examples)
            if (_examples.Count < KeptExamples) _examples.Add(example);
    }

    /// <summary>"3 skipped (2 symbol not in the dictionary, 1 empty label)", or "" when none was.</summary>
    public string Summary() => Count == 0 ? "" : $"{Count:N0} skipped ({string.Join(", ", _byReason.Select(r => $"{r.Value:N0} {r.Key}"))})";

    /// <summary>Writes the first <paramref name="examples"/> entries and the summary.</summary>
    public void Report(TextWriter log, string name, int examples = 5)
    {
        if (Count == 0) return;
        foreach (var example in _examples.Take(examples)) log.WriteLine($"skipped {example}");
        log.WriteLine($"{name}: {Summary()}");
    }
}
