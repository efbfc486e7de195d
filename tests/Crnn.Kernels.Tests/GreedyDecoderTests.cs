using Xunit;

namespace Crnn.Kernels.Tests;

public class GreedyDecoderTests
{
    /// <summary>Greedy CTC decoding in float64, written step by step: arg-max (first on ties), softmax
    /// probability of it, keep the first step of each run of a non-blank class.</summary>
    static (int[][] Ids, double[] Confidences) ReferenceDecode(float[] logits, int batch, int steps, int classes, int blank)
    {
        var ids = new int[batch][];
        var confidences = new double[batch];
        for (int b = 0; b < batch; b++)
        {
            var kept = new List<int>();
            double sum = 0;
            int previous = -1;
            for (int t = 0; t < steps; t++)
            {
                int row = (b * steps + t) * classes, arg = 0;
                for (int c = 1; c < classes; c++)
                    if (logits[row + c] > logits[row + arg]) arg = c;
                double z = 0;
                for (int c = 0; c < classes; c++) z += Math.Exp((double)logits[row + c] - logits[row + arg]);
                if (arg != blank && arg != previous)
                {
                    kept.Add(arg);
                    sum += 1 / z;
                }
                previous = arg;
            }
            ids[b] = kept.ToArray();
            confidences[b] = kept.Count > 0 ? sum / kept.Count : 0;
        }
        return (ids, confidences);
    }

    /// <summary>Random logits in [−1, 0) with the chosen class of each step raised to <paramref name="top"/>.</summary>
    static float[] LogitsFor(int[] chosen, int classes, int seed, float top = 2f)
    {
        var logits = Reference.Random(chosen.Length * classes, seed, -1f, 0f);
        for (int r = 0; r < chosen.Length; r++) logits[r * classes + chosen[r]] = top;
        return logits;
    }

    /// <summary>Decodes on the device through the buffer API (outputs pre-filled with sentinels) and checks it
    /// against the reference, padding included; returns the host-friendly result for further checks.</summary>
    static (int[][] Ids, float[] Confidences) DecodeAndCheck(Device dev, float[] logits, int batch, int steps, int classes, int blank)
    {
        var (expectedIds, expectedConfidences) = ReferenceDecode(logits, batch, steps, classes, blank);
        using var tl = dev.Upload(logits, batch, steps, classes);
        using var ids = dev.Upload(Enumerable.Repeat(int.MinValue, batch * steps).ToArray(), batch, steps);
        using var lengths = dev.Upload(Enumerable.Repeat(int.MinValue, batch).ToArray(), batch);
        using var confidences = Reference.NaNs(dev, batch);
        using var decoder = new GreedyDecoder(dev);
        decoder.Decode(tl.View, batch, steps, classes, ids.View, lengths.View, confidences.View, blank);
        var hostIds = ids.ToHost();
        var hostLengths = lengths.ToHost();
        for (int b = 0; b < batch; b++)
        {
            Assert.Equal(expectedIds[b].Length, hostLengths[b]);
            var row = hostIds.AsSpan(b * steps, steps).ToArray();
            var padded = expectedIds[b].Concat(Enumerable.Repeat(GreedyDecoder.Padding, steps - expectedIds[b].Length));
            Assert.Equal(padded, row);
        }
        Reference.AssertClose(expectedConfidences, confidences.ToHost(), 1e-5, "confidence");

        var host = decoder.Decode(tl, blank);
        Assert.Equal(expectedIds, host.Ids);
        Reference.AssertClose(expectedConfidences, host.Confidences, 1e-5, "host confidence");
        return host;
    }

    public static TheoryData<string, int, int, int, int> RandomCases()
    {
        var data = new TheoryData<string, int, int, int, int>();
        foreach (var device in TestDevices.Names)
        {
            data.Add(device, 1, 1, 1, 0);       // one class: everything is blank
            data.Add(device, 3, 7, 3, 0);       // few classes: many repeats and blanks
            data.Add(device, 5, 25, 37, 0);     // the seed model's head
            data.Add(device, 4, 13, 5, 4);      // blank is the last class
            data.Add(device, 2, 6, 6625, 0);    // PaddleOCR's Chinese dictionary size
            data.Add(device, 2, 5, 6625, 6624);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(RandomCases))]
    public void RandomLogitsMatchReference(string device, int batch, int steps, int classes, int blank)
    {
        // Wide logits make confident steps (probabilities near 1) as well as flat ones.
        var logits = Reference.Random(batch * steps * classes, batch * 1000 + classes, -4f, 4f);
        DecodeAndCheck(TestDevices.Get(device), logits, batch, steps, classes, blank);
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void CollapsesRepeatsAndDropsBlanks(string device)
    {
        // "a a - a b b - - c" → a a b c (a blank separates the repeated a); then an all-blank sample.
        int[] chosen = [1, 1, 0, 1, 2, 2, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        var result = DecodeAndCheck(TestDevices.Get(device), LogitsFor(chosen, 5, 1), 2, 9, 5, 0);
        Assert.Equal(new[] { 1, 1, 2, 3 }, result.Ids[0]);
        Assert.Empty(result.Ids[1]);
        Assert.Equal(0f, result.Confidences[1]);
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void BlankOtherThanZero(string device)
    {
        // With blank 3, class 0 is an ordinary symbol.
        int[] chosen = [0, 0, 3, 0, 2, 3, 3, 1];
        var result = DecodeAndCheck(TestDevices.Get(device), LogitsFor(chosen, 4, 2), 1, 8, 4, 3);
        Assert.Equal(new[] { 0, 0, 2, 1 }, result.Ids[0]);
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TiesPickTheFirstMaximum(string device)
    {
        const int classes = 6;
        int[] chosen = [2, 4, 5, 1];
        var logits = LogitsFor(chosen, classes, 3);
        logits[0 * classes + 4] = 2f;  // step 0: 2 and 4 tie → 2
        logits[1 * classes + 0] = 2f;  // step 1: blank and 4 tie → blank, dropped
        logits[2 * classes + 3] = 2f;  // step 2: 3 and 5 tie → 3
        logits[3 * classes + 3] = 2f;  // step 3: 1 and 3 tie → 1
        var result = DecodeAndCheck(TestDevices.Get(device), logits, 1, 4, classes, 0);
        Assert.Equal(new[] { 2, 3, 1 }, result.Ids[0]);
        // Two tied maxima over four logits in [−1, 0): each has probability below one half.
        Assert.True(result.Confidences[0] < 0.5f);
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void ConfidenceAveragesOnlyKeptSteps(string device)
    {
        // Steps 0 and 1 are the same run (only step 0 counts); the blank step is excluded.
        const int classes = 3;
        var logits = new float[]
        {
            0f, 1f, 0f,     // class 1, p = e/(e+2)
            0f, 9f, 0f,     // repeat of 1, confident but not kept
            5f, 0f, 0f,     // blank
            0f, 0f, 3f,     // class 2, p = e³/(e³+2)
        };
        var result = DecodeAndCheck(TestDevices.Get(device), logits, 1, 4, classes, 0);
        double p1 = Math.E / (Math.E + 2), p2 = Math.Exp(3) / (Math.Exp(3) + 2);
        Reference.AssertClose([(p1 + p2) / 2], result.Confidences, 1e-6, "confidence");
    }

    [Fact]
    public void EmptyBatchAndZeroSteps()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        using var decoder = new GreedyDecoder(dev);
        using var none = dev.Allocate(0, 25, 37);
        var empty = decoder.Decode(none);
        Assert.Empty(empty.Ids);
        using var noSteps = dev.Allocate(2, 0, 37);
        var result = decoder.Decode(noSteps);
        Assert.All(result.Ids, Assert.Empty);
        Assert.Equal(new[] { 0f, 0f }, result.Confidences);
    }

    [Fact]
    public void RejectsBadShapes()
    {
        var dev = TestDevices.Get(TestDevices.Default);
        using var decoder = new GreedyDecoder(dev);
        using var logits = dev.Allocate(2, 3, 4);
        using var ids = dev.Allocate<int>(6);
        using var lengths = dev.Allocate<int>(2);
        using var confidences = dev.Allocate(2);
        Assert.Throws<ArgumentException>(() => decoder.Decode(logits, blank: 4));
        Assert.Throws<ArgumentException>(() => decoder.Decode(logits, blank: -1));
        Assert.Throws<ArgumentException>(() => decoder.Decode(logits.Reshape(6, 4)));
        Assert.Throws<ArgumentException>(() => decoder.Decode(logits.View, 2, 3, 5, ids.View, lengths.View, confidences.View));
        Assert.Throws<ArgumentException>(() => decoder.Decode(logits.View, 2, 3, 4, ids.View.SubView(0, 5), lengths.View, confidences.View));
        Assert.Throws<ArgumentException>(() => decoder.Decode(logits.View, 2, 3, 4, ids.View, lengths.View.SubView(0, 1), confidences.View));
    }
}
