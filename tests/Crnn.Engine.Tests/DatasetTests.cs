using System.Text;
using Crnn.Engine.Data;
using Xunit;

namespace Crnn.Engine.Tests;

/// <summary>Label files and LMDBs: what is read back, what is skipped and why, case modes, and errors.</summary>
public class DatasetTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-data-").FullName;
    static readonly CharDictionary Default = CharDictionary.Default;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    string Write(string name, params string[] lines)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void LmdbSamplesAreReadBackExactlyWithoutALockFile()
    {
        var images = Enumerable.Range(0, 3).Select(i => DataFixtures.Image(seed: i, width: 30 + 20 * i)).ToList();
        string lmdb = Path.Combine(_folder, "lmdb");
        DataFixtures.WriteLmdb(lmdb, [(images[0].Png, Utf8("ab1")), (images[1].Png, Utf8("HeLLo")), (images[2].Png, Utf8("007"))]);
        var before = Directory.GetFiles(lmdb).Order().ToList();

        using var data = new LmdbDataset(lmdb, Default, maxSteps: 25, LabelCase.Auto);
        Assert.Equal(3, data.Count);
        Assert.Equal(0, data.Skipped.Count);
        Assert.Equal(["ab1", "hello", "007"], Enumerable.Range(0, 3).Select(data.Text));
        // classes: digit d → d + 1, letter → 11 + (letter − 'a'): h 18, e 15, l 22, o 25
        Assert.Equal([11, 12, 2], data.Label(0));
        Assert.Equal([18, 15, 22, 22, 25], data.Label(1));
        Assert.Equal([1, 1, 8], data.Label(2));
        var chw = new float[3 * 32 * 100];
        for (int i = 0; i < 3; i++)
        {
            data.Decode(i, chw);
            Assert.Equal(DataFixtures.Expected(images[i].Rgb, 30 + 20 * i), chw);
        }
        Assert.Contains("image-000000002", data.Describe(1));
        Assert.Equal(before, Directory.GetFiles(lmdb).Order().ToList()); // read-only, no lock.mdb written
    }

    [Fact]
    public void LmdbBadLabelsAreSkippedWithReasonsAndBadImagesFailOnRead()
    {
        var good = DataFixtures.Image(seed: 7).Png;
        string lmdb = Path.Combine(_folder, "bad");
        DataFixtures.WriteLmdb(lmdb,
        [
            (good, Utf8("ok")),                        // 1
            (good, Utf8("a-b")),                       // 2 symbol not in the dictionary
            (good, Utf8(new string('x', 26))),         // 3 too long for 25 steps
            (good, Utf8("")),                          // 4 empty label
            (good, null),                              // 5 no label key
            (good, [0x61, 0xFF, 0xFE]),                // 6 invalid UTF-8
            (null, Utf8("noimage")),                   // 7 no image key
            (Utf8("not a png"), Utf8("corrupt")),      // 8 undecodable image
            ([], Utf8("zero")),                        // 9 zero-size image
            (good[..(good.Length / 2)], Utf8("cut")),  // 10 truncated PNG
        ]);
        using var data = new LmdbDataset(lmdb, Default, 25, LabelCase.Auto);
        Assert.Equal(["ok", "noimage", "corrupt", "zero", "cut"], Enumerable.Range(0, data.Count).Select(data.Text));
        Assert.Equal(5, data.Skipped.Count);
        Assert.Equal(new Dictionary<string, int>
        {
            ["symbol not in the dictionary"] = 1, ["too long for 25 steps"] = 1, ["empty label"] = 1,
            ["missing label"] = 1, ["label is not valid UTF-8"] = 1,
        }, data.Skipped.ByReason);
        Assert.Contains(data.Skipped.Examples, e => e.Contains("label-000000002") && e.Contains("'-'"));

        var chw = new float[3 * 32 * 100];
        data.Decode(0, chw);
        Assert.Contains("image-000000007", Assert.Throws<InvalidDataException>(() => data.Decode(1, chw)).Message);
        Assert.Contains("image-000000008", Assert.Throws<InvalidDataException>(() => data.Decode(2, chw)).Message);
        Assert.Contains("empty", Assert.Throws<InvalidDataException>(() => data.Decode(3, chw)).Message);
        Assert.Contains("image-000000010", Assert.Throws<InvalidDataException>(() => data.Decode(4, chw)).Message);

        var strict = Assert.Throws<InvalidDataException>(() => new LmdbDataset(lmdb, Default, 25, LabelCase.Auto, strict: true));
        Assert.Contains("label-000000002", strict.Message);
    }

    [Fact]
    public void LmdbWithoutSamplesOrLayoutIsAnError()
    {
        string zero = Path.Combine(_folder, "zero");
        DataFixtures.WriteLmdb(zero, [], numSamples: 0);
        Assert.Contains("num-samples is 0", Assert.Throws<InvalidDataException>(() => new LmdbDataset(zero, Default, 25, LabelCase.Auto)).Message);
        string noCount = Path.Combine(_folder, "nocount");
        DataFixtures.WriteLmdb(noCount, [(DataFixtures.Image(1).Png, Utf8("a"))], numSamples: -1);
        Assert.Contains("no 'num-samples' key", Assert.Throws<InvalidDataException>(() => new LmdbDataset(noCount, Default, 25, LabelCase.Auto)).Message);
        string allBad = Path.Combine(_folder, "allbad");
        DataFixtures.WriteLmdb(allBad, [(DataFixtures.Image(1).Png, Utf8("A-B"))]);
        Assert.Contains("1 symbol not in the dictionary", Assert.Throws<InvalidDataException>(() => new LmdbDataset(allBad, Default, 25, LabelCase.Auto)).Message);
        Assert.Throws<FileNotFoundException>(() => new LmdbDataset(_folder, Default, 25, LabelCase.Auto));
    }

    [Fact]
    public void LabelFileSkipsBadLinesWithReasons()
    {
        string labels = Write("labels.txt",
            "a.png\tgood", "b.png\tab-c", "c.png\t", "d.png\t" + new string('q', 26), "no tab here", "\tpathless", "",
            "e.png\t" + new string('a', 13),  // 13 symbols + 12 blanks between repeats = 25 steps: fits
            "f.png\t" + new string('a', 14)); // 27 steps: does not
        var result = LabelFile.Read(labels, Default, 25, LabelCase.Auto);
        Assert.Equal(["good", new string('a', 13)], result.Samples.Select(s => s.Text));
        Assert.Equal([1, 8], result.Samples.Select(s => s.Line));
        Assert.Equal(Path.Combine(_folder, "a.png"), result.Samples[0].Path);
        Assert.Equal(6, result.Skipped.Count);
        Assert.Equal(2, result.Skipped.ByReason["too long for 25 steps"]);
        Assert.Equal(1, result.Skipped.ByReason["empty label"]);
        Assert.Equal(1, result.Skipped.ByReason["no tab"]);
        Assert.Equal(1, result.Skipped.ByReason["no image path"]);
        Assert.StartsWith($"{labels}:2: ", result.Skipped.Examples[0]);

        Assert.Contains($"{labels}:2", Assert.Throws<InvalidDataException>(() => LabelFile.Read(labels, Default, 25, strict: true)).Message);
        Assert.Contains("it is empty", Assert.Throws<InvalidDataException>(() => LabelFile.Read(Write("empty.txt"), Default, 25)).Message);
        Assert.Contains("no usable samples", Assert.Throws<InvalidDataException>(() => LabelFile.Read(Write("bad.txt", "x.png\t!!"), Default, 25)).Message);
        Assert.Throws<FileNotFoundException>(() => LabelFile.Read(Path.Combine(_folder, "missing.txt"), Default, 25));
    }

    [Theory]
    [InlineData(LabelCase.Auto, false, "hello")]  // 0-9a-z has no upper case: lower
    [InlineData(LabelCase.Lower, false, "hello")]
    [InlineData(LabelCase.Keep, false, null)]     // 'H' is not in 0-9a-z: skipped
    [InlineData(LabelCase.Auto, true, "HeLLo")]   // a dictionary with upper case: keep
    [InlineData(LabelCase.Keep, true, "HeLLo")]
    [InlineData(LabelCase.Lower, true, "hello")]
    public void CaseModes(LabelCase mode, bool upperCaseDictionary, string? expected)
    {
        var dictionary = upperCaseDictionary
            ? CharDictionary.FromSymbols(CharDictionary.DefaultSymbols.Concat("ABCDEFGHIJKLMNOPQRSTUVWXYZ").Select(c => c.ToString()))
            : Default;
        Assert.Equal(upperCaseDictionary, dictionary.HasUpperCaseLetters);
        string labels = Write("case.txt", "a.png\tHeLLo", "b.png\tok");
        var texts = LabelFile.Read(labels, dictionary, 25, mode).Samples.Select(s => s.Text).ToList();
        Assert.Equal(expected is null ? ["ok"] : [expected, "ok"], texts);

        string lmdb = Path.Combine(_folder, $"case-{mode}-{upperCaseDictionary}");
        DataFixtures.WriteLmdb(lmdb, [(DataFixtures.Image(1).Png, Utf8("HeLLo")), (DataFixtures.Image(2).Png, Utf8("ok"))]);
        using var data = new LmdbDataset(lmdb, dictionary, 25, mode);
        Assert.Equal(texts, Enumerable.Range(0, data.Count).Select(data.Text));
    }

    [Fact]
    public void OpenPicksTheFormatAndConcatenates()
    {
        var image = DataFixtures.Image(3);
        File.WriteAllBytes(Path.Combine(_folder, "x.png"), image.Png);
        string labels = Write("labels.txt", "x.png\tfile1", "x.png\tfile2");
        string root = Path.Combine(_folder, "lmdbs");
        DataFixtures.WriteLmdb(Path.Combine(root, "b"), [(image.Png, Utf8("b1"))]);
        DataFixtures.WriteLmdb(Path.Combine(root, "a", "inner"), [(image.Png, Utf8("a1")), (image.Png, Utf8("a2"))]);

        using (var single = Datasets.Open(Path.Combine(root, "b", "data.mdb"), Default, 25, LabelCase.Auto)) Assert.Equal("b1", single.Text(0));
        using (var tree = Datasets.Open(root, Default, 25, LabelCase.Auto)) // LMDB folders below, in path order
            Assert.Equal(["a1", "a2", "b1"], Enumerable.Range(0, tree.Count).Select(tree.Text));
        using var all = Datasets.Open([labels, Path.Combine(root, "b"), Path.Combine(root, "a", "inner")], Default, 25, LabelCase.Auto);
        Assert.Equal(["file1", "file2", "b1", "a1", "a2"], Enumerable.Range(0, all.Count).Select(all.Text));
        Assert.Equal([12, 2], all.Label(2));
        var chw = new float[3 * 32 * 100];
        all.Decode(4, chw);
        Assert.Equal(DataFixtures.Expected(image.Rgb), chw);
        Assert.Throws<FileNotFoundException>(() => Datasets.Open(Path.Combine(_folder, "nothing"), Default, 25, LabelCase.Auto));
        string empty = Directory.CreateDirectory(Path.Combine(_folder, "no-lmdb-here")).FullName;
        Assert.Contains("no LMDB dataset", Assert.Throws<FileNotFoundException>(() => Datasets.Open(empty, Default, 25, LabelCase.Auto)).Message);
    }
}
