using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.Engine.Tests;

public class SyntheticWordsTests
{
    const int Size = 3 * 32 * 100;

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
            Assert.True(sa.Image.Min() < -0.3f, "dark ink expected");
            Assert.True(sa.Image.Max() > 0.4f, "light background expected");
        }
        Assert.Equal(20, a.Position);
        Assert.NotEqual(a.Next().Image, c.Next().Image);
    }

    [Fact]
    public void ParallelBatchEqualsSequentialStreamAndResumesFromPosition()
    {
        using var sequential = new SyntheticWords(CharDictionary.Default, seed: 5);
        using var batched = new SyntheticWords(CharDictionary.Default, seed: 5);
        const int batch = 6;
        var images = new float[batch * Size];
        var texts = new string[batch];
        var labels = new int[batch][];
        batched.NextBatch(images, texts, labels);
        batched.NextBatch(images, texts, labels); // samples 6..11
        Assert.Equal(12, batched.Position);
        sequential.Position = 6;
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
                Assert.InRange(image.Width, 8, 300);
            }
            words.Position = 3;
            var sample = words.Next();
            Assert.Equal(sample.Text, text);
            Assert.Equal(sample.Image, Preprocess.LoadFile(path));
        }
        finally { Directory.Delete(Path.GetDirectoryName(path)!, recursive: true); }
    }

    [Fact]
    public void SpaceSymbolNeverStartsOrEndsAWord()
    {
        using var words = new SyntheticWords(CharDictionary.FromSymbols(["a", "b"], useSpaceChar: true), seed: 1);
        for (int i = 0; i < 100; i++)
        {
            var text = words.Next().Text;
            Assert.Equal(text.Trim(), text);
        }
    }

    [Fact]
    public void MissingFontOrGlyphIsAClearError()
    {
        Assert.Contains("/nonexistent.ttf", Assert.Throws<InvalidDataException>(() => new SyntheticWords(CharDictionary.Default, 1, "/nonexistent.ttf")).Message);
        var cjk = CharDictionary.FromSymbols(["a", "中"]);
        string dejavu = SyntheticWords.FindFont();
        Assert.EndsWith(".ttf", dejavu);
        if (Path.GetFileName(dejavu) == "DejaVuSans.ttf") // DejaVu has no CJK glyphs
            Assert.Contains("中", Assert.Throws<ArgumentException>(() => new SyntheticWords(cjk, 1)).Message);
    }
}
