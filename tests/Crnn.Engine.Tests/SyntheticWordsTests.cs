using Crnn.Engine.Data;
using Crnn.Engine.Synthetic;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace Crnn.Engine.Tests;

public class SyntheticWordsTests
{
    const int Size = 3 * 32 * 100;

    /// <summary>DejaVu Sans, the one font the tests may rely on (tools/setup.sh installs at least fonts-dejavu-core).</summary>
    static string DejaVuSans() =>
        FontCatalog.SystemFontRoots().SelectMany(r => Directory.EnumerateFiles(r, "DejaVuSans.ttf", SearchOption.AllDirectories)).First();

    [Fact]
    public void SameSeedGivesSameSamplesAndLabelsMatchText()
    {
        using var a = new SyntheticWords(CharDictionary.Default, seed: 11);
        using var b = new SyntheticWords(CharDictionary.Default, seed: 11);
        using var c = new SyntheticWords(CharDictionary.Default, seed: 12);
        for (int i = 0; i < 20; i++)
        {
            var sa = a.Next();
            var sb = b.Next();
            Assert.Equal(sa.Text, sb.Text);
            Assert.Equal(sa.Image, sb.Image);
            Assert.InRange(sa.Text.Length, SyntheticWords.MinLength, SyntheticWords.MaxLength);
            Assert.Equal(sa.Text, CharDictionary.Default.Decode(sa.Label));
            Assert.Equal(Size, sa.Image.Length);
            Assert.All(sa.Image, v => Assert.InRange(v, -1f, 1f));
        }
        Assert.Equal(20, a.Position);
        Assert.NotEqual(a.Next().Image, c.Next().Image);
    }

    [Fact]
    public void ParallelBatchEqualsSequentialStreamAndResumesFromPosition()
    {
        using var sequential = new SyntheticWords(CharDictionary.Default, seed: 5);
        using var batched = new SyntheticWords(CharDictionary.Default, seed: 5);
        const int batch = 16;
        var images = new float[batch * Size];
        var texts = new string[batch];
        var labels = new int[batch][];
        batched.NextBatch(images, texts, labels);
        batched.NextBatch(images, texts, labels); // samples 16..31
        Assert.Equal(2 * batch, batched.Position);
        sequential.Position = batch;
        for (int b = 0; b < batch; b++)
        {
            var s = sequential.Next();
            Assert.Equal(s.Text, texts[b]);
            Assert.Equal(s.Label, labels[b]);
            Assert.Equal(s.Image, images.AsSpan(b * Size, Size).ToArray());
        }
        Assert.Throws<ArgumentException>(() => batched.NextBatch(new float[Size], texts, labels));
    }

    [Fact]
    public void SavedPngPreprocessesToTheSameSample()
    {
        using var words = new SyntheticWords(CharDictionary.Default, seed: 2);
        string path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "w.png");
        try
        {
            string text = words.SavePng(3, path);
            using (var image = Image.Load<Rgb24>(path))
            {
                Assert.Equal(32, image.Height);
                Assert.InRange(image.Width, 8, 600);
            }
            words.Position = 3;
            var sample = words.Next();
            Assert.Equal(sample.Text, text);
            Assert.Equal(sample.Image, Preprocess.LoadFile(path));
        }
        finally { Directory.Delete(Path.GetDirectoryName(path)!, recursive: true); }
    }

    [Theory]
    [InlineData("0123456789abcdefghijklmnopqrstuvwxyz", false)]
    [InlineData("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", false)] // upper case only: words are mapped to UPPER
    [InlineData("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", true)]
    [InlineData("0123456789", false)] // no letters: digit strings only
    public void EveryLabelIsEncodableAlignableAndTrimmed(string symbols, bool space)
    {
        var dictionary = CharDictionary.FromSymbols(symbols.Select(c => c.ToString()), useSpaceChar: space);
        using var words = new SyntheticWords(dictionary, seed: 4, new SyntheticOptions { Augment = false });
        var rng = new Random(1);
        var sampler = new TextSampler(dictionary, wordRatio: 0.5);
        for (int i = 0; i < 400; i++)
        {
            string text = sampler.Next(rng);
            Assert.True(dictionary.TryEncode(text, out var ids, out var error), error);
            Assert.NotEmpty(ids);
            Assert.True(LabelFile.Alignable(ids, 25), text);
            Assert.Equal(text.Trim(), text);
        }
        for (int i = 0; i < 30; i++)
        {
            var sample = words.Next();
            Assert.Equal(sample.Text, dictionary.Decode(sample.Label));
            Assert.True(LabelFile.Alignable(sample.Label, 25), sample.Text);
        }
    }

    [Fact]
    public void SpaceDictionaryGetsTwoWordTextsAndNeverEdgeSpaces()
    {
        var dictionary = CharDictionary.FromSymbols(CharDictionary.DefaultSymbols.Select(c => c.ToString()), useSpaceChar: true);
        var sampler = new TextSampler(dictionary, wordRatio: 1);
        var rng = new Random(3);
        var texts = Enumerable.Range(0, 300).Select(_ => sampler.Next(rng)).ToList();
        Assert.All(texts, t => Assert.Equal(t.Trim(), t));
        var list = TextSampler.WordList.ToHashSet();
        var twoWords = texts.Where(t => t.Contains(' ')).ToList();
        Assert.InRange(twoWords.Count, 50, 150); // 30 % of 300 expected
        Assert.All(twoWords, t => Assert.All(t.Split(' '), w => Assert.Contains(w, list)));
    }

    [Fact]
    public void EmbeddedWordListIsLowerCaseEnglishOfAtMostTwelveLetters()
    {
        var list = TextSampler.WordList;
        Assert.InRange(list.Count, 15_000, 40_000);
        Assert.All(list, w => Assert.Matches("^[a-z]{1,12}$", w));
        foreach (var common in new[] { "house", "water", "computer" }) // spot-check: real English words
            Assert.Contains(common, list);
        Assert.Equal(list.Count, list.Distinct().Count());
    }

    [Fact]
    public void WordRatioControlsTheShareOfListWords()
    {
        var list = TextSampler.WordList.ToHashSet();
        double Share(double ratio)
        {
            var sampler = new TextSampler(CharDictionary.Default, ratio);
            var rng = new Random(7);
            return Enumerable.Range(0, 1000).Count(_ => list.Contains(sampler.Next(rng))) / 1000.0;
        }
        Assert.Equal(1.0, Share(1.0));
        // Binomial(1000, 0.5): sd 1.6 %; a random string is rarely an English word (a few one-letter ones are).
        Assert.InRange(Share(0.5), 0.45, 0.58);
        Assert.InRange(Share(0.0), 0.0, 0.08);
        using var words = new SyntheticWords(CharDictionary.Default, seed: 9);
        Assert.Contains(Enumerable.Range(0, 50), i => list.Contains(words.Render(i).Text));
    }

    [Fact]
    public void HeldOutFamilyIsExcludedByDefaultAndExcludedPatternsAreNeverUsed()
    {
        using var all = new SyntheticWords(CharDictionary.Default, seed: 1);
        Assert.NotEmpty(all.FontPaths);
        Assert.DoesNotContain(all.FontPaths, p => Path.GetFileName(p).StartsWith("NotoSerif", StringComparison.Ordinal));
        Assert.Contains(all.FontPaths, p => Path.GetFileName(p) == "DejaVuSans.ttf");
        Assert.Equal(all.FontPaths.Order(StringComparer.Ordinal), all.FontPaths);

        var options = new SyntheticOptions { ExcludeFonts = ["*Bold*", "/**/dejavu/DejaVuSans.ttf"] };
        using var some = new SyntheticWords(CharDictionary.Default, seed: 1, options);
        Assert.DoesNotContain(some.FontPaths, p => p.Contains("Bold") || Path.GetFileName(p) == "DejaVuSans.ttf");
        Assert.Equal(all.FontPaths.Where(p => !p.Contains("Bold") && Path.GetFileName(p) != "DejaVuSans.ttf"), some.FontPaths);
        for (int i = 0; i < 200; i++)
            Assert.DoesNotContain("Bold", Path.GetFileName(some.FontOf(i)));
        // Every font of the catalog is drawn: 2000 samples over at most ~100 fonts.
        var used = Enumerable.Range(0, 2000).Select(i => all.FontOf(i)).ToHashSet();
        Assert.Equal(all.FontPaths.Count, used.Count);
    }

    [Fact]
    public void HeldOutFontCanBeChosenExplicitly()
    {
        var serif = FontCatalog.SystemFontRoots().SelectMany(r => Directory.EnumerateFiles(r, "NotoSerif-Regular.ttf", SearchOption.AllDirectories)).FirstOrDefault();
        if (serif is null) return; // fonts-noto-core not installed: nothing held out to choose
        using var words = new SyntheticWords(CharDictionary.Default, seed: 1, new SyntheticOptions { Fonts = [serif] });
        Assert.Equal([serif], words.FontPaths);
    }

    [Fact]
    public void BadFontFileInAFolderIsSkippedWithAReason()
    {
        var folder = Directory.CreateTempSubdirectory("crnn-fonts-").FullName;
        try
        {
            File.Copy(DejaVuSans(), Path.Combine(folder, "good.ttf"));
            File.WriteAllBytes(Path.Combine(folder, "broken.ttf"), [.. Enumerable.Range(0, 500).Select(i => (byte)(i * 37))]);
            File.WriteAllText(Path.Combine(folder, "readme.txt"), "not a font");
            var warnings = new List<string>();
            using var words = new SyntheticWords(CharDictionary.Default, seed: 1, new SyntheticOptions { Fonts = [folder], Log = warnings.Add });
            Assert.Equal([Path.Combine(folder, "good.ttf")], words.FontPaths);
            Assert.Contains(warnings, w => w.Contains("broken.ttf"));
            Assert.Equal(32, words.Render(0).Height);

            using var globbed = new SyntheticWords(CharDictionary.Default, seed: 1, new SyntheticOptions { Fonts = [Path.Combine(folder, "g*.ttf")] });
            Assert.Equal([Path.Combine(folder, "good.ttf")], globbed.FontPaths);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Fact]
    public void MissingFontOrGlyphIsAClearError()
    {
        var missing = Assert.Throws<FileNotFoundException>(() => new SyntheticWords(CharDictionary.Default, 1, new SyntheticOptions { Fonts = ["/nonexistent.ttf"] }));
        Assert.Contains("/nonexistent.ttf", missing.Message);
        Assert.Throws<FileNotFoundException>(() => new SyntheticWords(CharDictionary.Default, 1, new SyntheticOptions { Fonts = ["/nonexistent/*.ttf"] }));
        var cjk = CharDictionary.FromSymbols(["a", "中"]);
        var noGlyph = Assert.Throws<ArgumentException>(() => new SyntheticWords(cjk, 1, new SyntheticOptions { Fonts = [DejaVuSans()], Log = _ => { } }));
        Assert.Contains("中", noGlyph.Message);
        Assert.Throws<ArgumentException>(() => new SyntheticWords(CharDictionary.Default, 1, new SyntheticOptions { WordRatio = 1.5 }));
    }

    /// <summary>Readability, measured: the darkest and lightest 5 % of pixels (ink and paper, in some order)
    /// differ by at least 50 gray levels, with blur, noise, contrast changes and textures applied.</summary>
    [Fact]
    public void AugmentedImagesKeepContrastBetweenTextAndBackground()
    {
        using var words = new SyntheticWords(CharDictionary.Default, seed: 21);
        int inverse = 0;
        for (int i = 0; i < 300; i++)
        {
            var word = words.Render(i);
            var gray = new double[word.Width * word.Height];
            for (int p = 0; p < gray.Length; p++)
                gray[p] = 0.299 * word.Rgb[3 * p] + 0.587 * word.Rgb[3 * p + 1] + 0.114 * word.Rgb[3 * p + 2];
            Array.Sort(gray);
            double dark = gray[..(gray.Length / 20 + 1)].Average(), light = gray[^(gray.Length / 20 + 1)..].Average();
            Assert.True(light - dark >= 50, $"sample {i} '{word.Text}': ink/paper contrast {light - dark:F0} gray levels");
            double median = gray[gray.Length / 2];
            if (median < (dark + light) / 2) inverse++; // most pixels dark: light text on a dark background
        }
        Assert.InRange(inverse, 30, 100); // about a fifth of the samples are light on dark
    }
}
