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
        static bool Bold(string path) => Path.GetFileName(path).Contains("bold", StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(some.FontPaths, p => Bold(p) || Path.GetFileName(p) == "DejaVuSans.ttf");
        Assert.Equal(all.FontPaths.Where(p => !Bold(p) && Path.GetFileName(p) != "DejaVuSans.ttf"), some.FontPaths);
        for (int i = 0; i < 200; i++)
            Assert.False(Bold(some.FontOf(i)));
        // Every family of the catalog is drawn, about equally often: 40 samples a family on average.
        var familyOf = all.FontPaths.ToDictionary(p => p, FamilyOf);
        var families = familyOf.Values.Distinct().ToList();
        var drawn = Enumerable.Range(0, 40 * families.Count).Select(i => familyOf[all.FontOf(i)]).CountBy(f => f).ToDictionary();
        Assert.Equal(families.Order(), drawn.Keys.Order());
        Assert.All(drawn.Values, n => Assert.InRange(n, 10, 90)); // Binomial: mean 40, sd 6.3
    }

    static string FamilyOf(string path)
    {
        using var typeface = SkiaSharp.SKTypeface.FromFile(path);
        return typeface.FamilyName;
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
    /// differ by at least 40 gray levels, with every effect applied.</summary>
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
            Assert.True(light - dark >= 40, $"sample {i} '{word.Text}': ink/paper contrast {light - dark:F0} gray levels");
            double median = gray[gray.Length / 2];
            if (median < (dark + light) / 2) inverse++; // most pixels dark: light text on a dark background
        }
        Assert.InRange(inverse, 30, 100); // about a fifth of the samples are light on dark
    }

    /// <summary>The families reserved for others' evaluation (Lora, Roboto Slab, Courier Prime) are never used,
    /// even when a folder or --fonts names them.</summary>
    [Fact]
    public void ReservedFamiliesAreNeverUsed()
    {
        var folder = Directory.CreateTempSubdirectory("crnn-fonts-").FullName;
        try
        {
            foreach (var name in new[] { "Lora-Regular.ttf", "RobotoSlab-Bold.ttf", "CourierPrime-Italic.ttf", "Keep.ttf" })
                File.Copy(DejaVuSans(), Path.Combine(folder, name));
            using var words = new SyntheticWords(CharDictionary.Default, seed: 1, new SyntheticOptions { Fonts = [folder] });
            Assert.Equal([Path.Combine(folder, "Keep.ttf")], words.FontPaths);
            using var system = new SyntheticWords(CharDictionary.Default, seed: 1);
            Assert.DoesNotContain(system.FontPaths, p => FontCatalog.ReservedPatterns.Any(r =>
                Path.GetFileName(p).StartsWith(r.TrimEnd('*'), StringComparison.OrdinalIgnoreCase)));
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    static SyntheticWords WithEffects(SyntheticEffects effects, int seed = 31) =>
        new(CharDictionary.Default, seed, new SyntheticOptions { Fonts = [DejaVuSans()], Effects = effects });

    /// <summary>Total variation: the summed absolute difference of horizontally and vertically neighbouring bytes
    /// per pixel — low for smooth images, high for sharp or noisy ones.</summary>
    static double Variation(RenderedWord w)
    {
        double sum = 0;
        for (int y = 0; y < w.Height; y++)
            for (int x = 0; x < w.Width; x++)
                for (int c = 0; c < 3; c++)
                {
                    int v = w.Rgb[(y * w.Width + x) * 3 + c];
                    if (x + 1 < w.Width) sum += Math.Abs(v - w.Rgb[(y * w.Width + x + 1) * 3 + c]);
                    if (y + 1 < w.Height) sum += Math.Abs(v - w.Rgb[((y + 1) * w.Width + x) * 3 + c]);
                }
        return sum / (w.Width * w.Height);
    }

    /// <summary>The share of pixels, or of the outermost pixels, that are ink: darker than halfway between the
    /// darkest and lightest pixel (samples without effects are dark on light).</summary>
    static double Ink(RenderedWord w, bool edgeOnly)
    {
        double Luma(int p) => 0.299 * w.Rgb[p] + 0.587 * w.Rgb[p + 1] + 0.114 * w.Rgb[p + 2];
        var lumas = Enumerable.Range(0, w.Width * w.Height).Select(i => Luma(3 * i)).ToList();
        double threshold = (lumas.Min() + lumas.Max()) / 2;
        int edge = 0, ink = 0;
        for (int y = 0; y < w.Height; y++)
            for (int x = 0; x < w.Width; x++)
                if (!edgeOnly || x == 0 || y == 0 || x == w.Width - 1 || y == w.Height - 1)
                {
                    edge++;
                    if (lumas[y * w.Width + x] < threshold) ink++;
                }
        return (double)ink / edge;
    }

    static double Brightness(RenderedWord w) => w.Rgb.Average(b => (double)b);

    /// <summary>Each effect, alone and always on, changes the images of a fixed font and keeps their labels; alone and
    /// never on (from the defaults) it leaves every other random choice of a sample as it was, so each effect's
    /// draws are its own.</summary>
    [Fact]
    public void EachEffectChangesTheImagesAndOnlyItsOwnChoices()
    {
        using var plain = WithEffects(SyntheticEffects.None);
        foreach (var (name, _) in SyntheticEffects.Default.All())
        {
            using var alone = WithEffects(SyntheticEffects.None.With(name, 1));
            int changed = 0;
            for (int i = 0; i < 8; i++)
            {
                RenderedWord a = plain.Render(i), b = alone.Render(i);
                Assert.Equal(a.Text, b.Text);
                Assert.Equal(32, b.Height);
                if (a.Width != b.Width || !a.Rgb.SequenceEqual(b.Rgb)) changed++;
            }
            Assert.True(changed >= 6, $"{name} changed {changed} of 8 samples");
        }
        // Switching defocus off changes only the samples it fired on; the other samples keep every pixel.
        using var all = WithEffects(SyntheticEffects.Default);
        using var noBlur = WithEffects(SyntheticEffects.Default.With(nameof(SyntheticEffects.Defocus), 0));
        int same = Enumerable.Range(0, 40).Count(i => all.Render(i).Rgb.SequenceEqual(noBlur.Render(i).Rgb));
        Assert.InRange(same, 16, 39); // defocus fires on 30 %: about 28 of 40 unchanged
    }

    /// <summary>What each camera and crop effect should do to an image, measured against the same sample without it.</summary>
    [Fact]
    public void EffectsDoWhatTheySay()
    {
        using var plain = WithEffects(SyntheticEffects.None);
        double Mean(string effect, Func<RenderedWord, RenderedWord, double> measure)
        {
            using var on = WithEffects(SyntheticEffects.None.With(effect, 1));
            return Enumerable.Range(0, 12).Average(i => measure(plain.Render(i), on.Render(i)));
        }
        // Blur and upscaling smooth the image; noise roughens it.
        void Check(string effect, Func<RenderedWord, RenderedWord, double> measure, double low, double high)
        {
            double value = Mean(effect, measure);
            Assert.True(value >= low && value <= high, $"{effect}: {value:F3} not in [{low}, {high}]");
        }
        foreach (var smoothing in new[] { "LowResolution", "Defocus", "MotionBlur" })
            Check(smoothing, (a, b) => Variation(b) / Variation(a), 0, 0.85);
        Check("Noise", (a, b) => Variation(b) / Variation(a), 1.3, 100);
        // JPEG changes pixels a little, not the picture.
        Check("Jpeg", (a, b) => a.Rgb.Zip(b.Rgb, (x, y) => Math.Abs(x - y)).Average(), 0.5, 15);
        // Light text on dark paper; uneven light and cast shadows only darken or lighten a little on average.
        Check("Inverse", (a, b) => Brightness(b) - Brightness(a), -255, -60);
        Check("CastShadow", (a, b) => Brightness(b) / Brightness(a), 0.5, 0.99);
        // Crops: tight crops put ink on the image's edge; in loose ones the text covers less of the image.
        Check("TightCrop", (a, b) => Ink(b, edgeOnly: true) - Ink(a, edgeOnly: true), 0.01, 1);
        Check("LooseCrop", (a, b) => Ink(b, edgeOnly: false) / Ink(a, edgeOnly: false), 0, 0.8);
        // Upper case: a caseless dictionary's words are drawn in capitals, wider than lower-case letters, so the
        // same word makes a wider crop at the same height.
        Check("UpperCase", (a, b) => (double)b.Width / a.Width, 1.02, 100);
    }

    [Fact]
    public void PunctuationAppearsOnlyForDictionariesThatHaveIt()
    {
        var symbols = CharDictionary.DefaultSymbols.Select(c => c.ToString()).Concat(["A", "B", ".", ",", "!", "'", "-", "(", ")", "$", "%", "\""]);
        var dictionary = CharDictionary.FromSymbols(symbols);
        var sampler = new TextSampler(dictionary, wordRatio: 1);
        var rng = new Random(5);
        var texts = Enumerable.Range(0, 400).Select(_ => sampler.Next(rng)).ToList();
        Assert.All(texts, t => Assert.True(dictionary.TryEncode(t, out _, out _), t));
        int punctuated = texts.Count(t => t.Any(char.IsPunctuation) || t.Contains('$') || t.Contains('%'));
        Assert.InRange(punctuated, 40, 160); // a quarter of the words, less the forms the dictionary cannot spell
        var plain = new TextSampler(CharDictionary.Default, wordRatio: 1);
        Assert.All(Enumerable.Range(0, 200).Select(_ => plain.Next(rng)), t => Assert.Matches("^[a-z]+$", t));
    }

    [Fact]
    public void EffectProbabilitiesAreChecked()
    {
        Assert.Throws<ArgumentException>(() => SyntheticEffects.Default.With("Sparkles", 0.5));
        var bad = SyntheticEffects.Default.With(nameof(SyntheticEffects.Jpeg), 1.5);
        var error = Assert.Throws<ArgumentException>(() => new SyntheticWords(CharDictionary.Default, 1, new SyntheticOptions { Effects = bad }));
        Assert.Contains("Jpeg", error.Message);
        Assert.All(SyntheticEffects.None.All(), e => Assert.Equal(0, e.Probability));
        Assert.True(SyntheticEffects.Default.All().Count >= 25);
    }
}
