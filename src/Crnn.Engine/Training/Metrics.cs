using System.Text;

namespace Crnn.Engine.Training;

/// <summary>
/// Word accuracy and PaddleOCR's normalized edit distance (1 − mean of distance / longer length), counted in
/// characters (Unicode code points, as Python counts them). With the benchmark convention both texts are first
/// reduced to lower-case ASCII letters and digits, as the scene-text benchmarks score (clovaai's
/// deep-text-recognition-benchmark, PaddleOCR's RecMetric with is_filter): "Hello, World!" counts as "helloworld".
/// </summary>
public sealed class RecognitionMetrics(bool benchmarkConvention = false)
{
    int _count, _correct;
    double _normalizedDistance;

    public bool BenchmarkConvention => benchmarkConvention;
    public int Count => _count;
    public int Correct => _correct;
    public double Accuracy => _count == 0 ? 0 : (double)_correct / _count;
    /// <summary>1 − mean normalized Levenshtein distance: 1 when every prediction is exact.</summary>
    public double NormEditDistance => _count == 0 ? 0 : 1 - _normalizedDistance / _count;

    public void Add(string predicted, string expected)
    {
        if (benchmarkConvention) (predicted, expected) = (BenchmarkText(predicted), BenchmarkText(expected));
        _count++;
        if (predicted == expected) _correct++;
        var a = CodePoints(predicted);
        var b = CodePoints(expected);
        int longer = Math.Max(a.Length, b.Length);
        if (longer > 0) _normalizedDistance += (double)Levenshtein(a, b) / longer;
    }

    /// <summary>Adds every sample of <paramref name="other"/> (a total over several datasets).</summary>
    public void Add(RecognitionMetrics other)
    {
        _count += other._count;
        _correct += other._correct;
        _normalizedDistance += other._normalizedDistance;
    }

    /// <summary>The benchmark convention's text: ASCII letters lower-cased, ASCII digits, nothing else.</summary>
    public static string BenchmarkText(string text)
    {
        var kept = new StringBuilder(text.Length);
        foreach (char c in text)
            if (char.IsAsciiLetterOrDigit(c)) kept.Append(char.ToLowerInvariant(c));
        return kept.ToString();
    }

    public static int Levenshtein(string a, string b) => Levenshtein(CodePoints(a), CodePoints(b));

    static int[] CodePoints(string text) => text.EnumerateRunes().Select(r => r.Value).ToArray();

    static int Levenshtein(int[] a, int[] b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
