using Crnn.Engine.Data;
using Xunit;

namespace Crnn.Engine.Tests;

/// <summary>The training stream over a dataset: bad images skipped and replaced by the next sample, reported
/// once each, deterministic and exactly resumable.</summary>
public class LabelFileSourceTests : IDisposable
{
    const int Size = 3 * 32 * 100;
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-source-").FullName;
    readonly Dictionary<string, float[]> _expected = [];

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Ten samples "s0".."s9" (image i{k}.png); the named ones are broken in the listed way.</summary>
    string Labels(string name, params (int Index, string How)[] broken)
    {
        var lines = new List<string>();
        for (int k = 0; k < 10; k++)
        {
            string image = Path.Combine(_folder, $"{name}-{k}.png");
            var (rgb, png) = DataFixtures.Image(seed: 100 + k, width: 20 + 7 * k);
            _expected[$"s{k}"] = DataFixtures.Expected(rgb, 20 + 7 * k);
            switch (broken.FirstOrDefault(b => b.Index == k).How)
            {
                case "missing": break;
                case "empty": File.WriteAllBytes(image, []); break;
                case "corrupt": File.WriteAllText(image, "this is not an image"); break;
                case "truncated": File.WriteAllBytes(image, png[..(png.Length / 2)]); break;
                default: File.WriteAllBytes(image, png); break;
            }
            lines.Add($"{Path.GetFileName(image)}\ts{k}");
        }
        string path = Path.Combine(_folder, $"{name}.txt");
        File.WriteAllLines(path, lines);
        return path;
    }

    static LabelFileSource Source(string labels, bool strict = false, List<string>? reports = null) =>
        new(LabelFileDataset.Open(labels, CharDictionary.Default, 25, LabelCase.Auto), seed: 4, strict) { Report = reports is null ? null : reports.Add };

    List<string> Draw(IBatchSource source, int batches, int batch = 4)
    {
        var drawn = new List<string>();
        var images = new float[batch * Size];
        var texts = new string[batch];
        var labels = new int[batch][];
        for (int b = 0; b < batches; b++)
        {
            source.NextBatch(images, texts, labels);
            for (int i = 0; i < batch; i++)
            {
                Assert.Equal(_expected[texts[i]], images.AsSpan(i * Size, Size).ToArray());
                Assert.Equal(CharDictionary.Default.Encode(texts[i]), labels[i]);
            }
            drawn.AddRange(texts);
        }
        return drawn;
    }

    [Fact]
    public void BadImagesAreSkippedReportedOnceAndReplacedByTheNextGoodSample()
    {
        using var clean = Source(Labels("clean"));
        var cleanStream = Draw(clean, batches: 6); // 24 draws: over two epochs of 10
        var reports = new List<string>();
        using var source = Source(Labels("bad", (1, "missing"), (4, "empty"), (6, "corrupt"), (9, "truncated")), reports: reports);
        var stream = Draw(source, batches: 4);   // 16 draws: into the second epoch

        // The same order, each bad sample replaced by the first good one after it.
        var bad = new HashSet<string> { "s1", "s4", "s6", "s9" };
        var expected = Enumerable.Range(0, 16).Select(p => cleanStream.Skip(p).First(t => !bad.Contains(t))).ToList();
        Assert.Equal(expected, stream);
        Assert.DoesNotContain(stream, bad.Contains);
        Assert.Equal(16, source.Position); // one per sample handed out, as PrefetchingSource counts

        Assert.Equal(4, source.BadImages);
        Assert.Equal(4, reports.Count); // met again in the second epoch, reported once
        Assert.Contains(reports, r => r.Contains("bad-1.png") && r.Contains("not found"));
        Assert.Contains(reports, r => r.Contains("bad-4.png") && r.Contains("empty"));
        Assert.Contains(reports, r => r.Contains("bad-6.png"));
        Assert.Contains(reports, r => r.Contains("bad-9.png") && r.Contains("truncated"));
    }

    [Fact]
    public void BehindAPrefetchingSourceTheStreamAndPositionAreTheSame()
    {
        string labels = Labels("prefetch", (0, "corrupt"), (5, "missing"));
        using var direct = Source(labels);
        var expected = Draw(direct, batches: 5);
        using var prefetched = new PrefetchingSource(Source(labels));
        Assert.Equal(expected, Draw(prefetched, batches: 5));
        Assert.Equal(direct.Position, prefetched.Position);
    }

    [Fact]
    public void ResumingAtAPositionContinuesExactly()
    {
        string labels = Labels("resume", (2, "corrupt"), (7, "missing"));
        using var first = Source(labels);
        Draw(first, batches: 2);
        long position = first.Position;
        var rest = Draw(first, batches: 3);

        using var resumed = Source(labels);
        resumed.Position = position;
        Assert.Equal(rest, Draw(resumed, batches: 3));
    }

    [Fact]
    public void StrictStopsAtTheFirstBadImageAndAllBadIsAnError()
    {
        using var strict = Source(Labels("strict", (3, "corrupt")), strict: true);
        var e = Assert.Throws<InvalidDataException>(() => Draw(strict, batches: 3));
        Assert.Contains("strict-3.png", e.Message);

        string labels = Labels("allbad", Enumerable.Range(0, 10).Select(k => (k, "missing")).ToArray());
        using var hopeless = Source(labels);
        Assert.Contains("no image of", Assert.Throws<InvalidDataException>(() => Draw(hopeless, batches: 1)).Message);
    }
}
