using Crnn.Engine.Training;
using Xunit;

namespace Crnn.Engine.Tests;

public class RecognitionMetricsTests
{
    [Fact]
    public void ExactMatchAndNormalizedEditDistanceByHand()
    {
        var m = new RecognitionMetrics();
        m.Add("hello", "hello");  // distance 0
        m.Add("hallo", "hello");  // 1 substitution / 5
        m.Add("", "abc");         // 3 / 3
        m.Add("", "");            // an empty pair is a match: 0
        Assert.Equal(4, m.Count);
        Assert.Equal(2 / 4.0, m.Accuracy, 12);
        Assert.Equal(1 - (0 + 0.2 + 1 + 0) / 4, m.NormEditDistance, 12);
    }

    [Fact]
    public void BenchmarkConventionLowerCasesAndKeepsOnlyLettersAndDigits()
    {
        Assert.Equal("helloworld42", RecognitionMetrics.BenchmarkText("Hello, World! 42"));
        Assert.Equal("caf", RecognitionMetrics.BenchmarkText("Café")); // é is not an ASCII letter
        var m = new RecognitionMetrics(benchmarkConvention: true);
        m.Add("HELLO.", "hello");     // "hello" = "hello": match
        m.Add("Hel1o", "HELLO!");     // "hel1o" vs "hello": 1 / 5
        m.Add("it's", "ITS");         // "its" = "its": match
        m.Add("a-b-c", "xyz");        // "abc" vs "xyz": 3 / 3
        Assert.Equal(2 / 4.0, m.Accuracy, 12);
        Assert.Equal(1 - (0 + 0.2 + 0 + 1) / 4, m.NormEditDistance, 12);

        var exact = new RecognitionMetrics();
        exact.Add("HELLO.", "hello"); // without the convention: 5 substitutions + 1 deletion over 6
        Assert.Equal(0, exact.Accuracy);
        Assert.Equal(1 - 6 / 6.0, exact.NormEditDistance, 12);
    }

    [Fact]
    public void DistancesCountCodePointsNotUtf16Units()
    {
        Assert.Equal(1, RecognitionMetrics.Levenshtein("😀a", "a"));
        var m = new RecognitionMetrics();
        m.Add("😀a", "a"); // 1 edit over 2 characters (3 UTF-16 units)
        Assert.Equal(0.5, m.NormEditDistance, 12);
    }

    [Fact]
    public void TotalsAddUp()
    {
        var a = new RecognitionMetrics();
        a.Add("ab", "ab");
        var b = new RecognitionMetrics();
        b.Add("ab", "cd");
        b.Add("x", "x");
        a.Add(b);
        Assert.Equal(3, a.Count);
        Assert.Equal(2 / 3.0, a.Accuracy, 12);
        Assert.Equal(1 - 1 / 3.0, a.NormEditDistance, 12);
    }
}
