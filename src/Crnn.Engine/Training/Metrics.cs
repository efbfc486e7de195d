namespace Crnn.Engine.Training;

/// <summary>Word accuracy and PaddleOCR's normalized edit distance (1 − mean of distance / longer length).</summary>
public sealed class RecognitionMetrics
{
    int _count, _correct;
    double _normalizedDistance;

    public int Count => _count;
    public double Accuracy => _count == 0 ? 0 : (double)_correct / _count;
    /// <summary>1 − mean normalized Levenshtein distance: 1 when every prediction is exact.</summary>
    public double NormEditDistance => _count == 0 ? 0 : 1 - _normalizedDistance / _count;

    public void Add(string predicted, string expected)
    {
        _count++;
        if (predicted == expected) _correct++;
        int longer = Math.Max(predicted.Length, expected.Length);
        if (longer > 0) _normalizedDistance += (double)Levenshtein(predicted, expected) / longer;
    }

    public static int Levenshtein(string a, string b)
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
