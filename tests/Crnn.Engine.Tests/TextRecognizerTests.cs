using System.Diagnostics;
using Crnn.Engine.Export;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;
using Xunit.Abstractions;

namespace Crnn.Engine.Tests;

/// <summary>The embedding API on the imported PaddleOCR model: every input overload, character positions, and one
/// reader shared by 8 threads giving what sequential calls give.</summary>
public class TextRecognizerTests(ITestOutputHelper output) : IDisposable
{
    static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures", "paddleocr");
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-reader-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    string ImportedModel()
    {
        string model = Path.Combine(_folder, "model");
        var dictionary = CharDictionary.Load(Path.Combine(Fixtures, "en_dict.txt"), useSpaceChar: true);
        PaddleImport.Import(Path.Combine(Fixtures, "en_number_mobile_v2.0_rec_infer.onnx"), dictionary).Save(model);
        return model;
    }

    static Image<Rgb24> Image(string text)
    {
        var (rgb, width, height) = PaddleImportTests.Render(text);
        return SixLabors.ImageSharp.Image.LoadPixelData<Rgb24>(rgb, width, height);
    }

    static readonly string[] Words = ["Hello", "2026", "(a+b)=c!", "www.site.com", "Ok", "Price: $45.99", "quick brown fox", "Z"];

    [Fact]
    public void EveryInputGivesTheSameTextAndCharactersArePlacedInOrder()
    {
        using var reader = TextRecognizer.Open(ImportedModel(), device: "cpu");
        using var image = Image("Hello World");
        string png = Path.Combine(_folder, "hello.png");
        image.SaveAsPng(png);
        var fromImage = reader.Read(image);
        output.WriteLine($"{fromImage.Text} {fromImage.Confidence:F3}: " + string.Join(" ", fromImage.Characters.Select(c => $"{c.Symbol}[{c.Left:F0}-{c.Right:F0}]")));
        Assert.Equal("Hello World", fromImage.Text);
        Assert.InRange(fromImage.Confidence, 0.5f, 1f);
        foreach (var other in new[] { reader.Read(png), reader.Read(File.ReadAllBytes(png)), reader.Read(File.OpenRead(png)), reader.ReadBatch([png])[0] })
        {
            Assert.Equal(fromImage.Text, other.Text);
            Assert.Equal(fromImage.Confidence, other.Confidence);
        }

        // One span per symbol, left to right inside the image; 'H' starts near the left edge (the text is drawn at x = 4).
        var c = fromImage.Characters;
        Assert.Equal("Hello World", string.Concat(c.Select(x => x.Symbol)));
        for (int k = 0; k < c.Count; k++)
        {
            Assert.InRange(c[k].Left, 0, c[k].Right);
            Assert.InRange(c[k].Right, c[k].Left, image.Width);
            if (k > 0) Assert.True(c[k].FirstStep > c[k - 1].LastStep, $"symbol {k} starts at step {c[k].FirstStep}, before {c[k - 1].LastStep}");
        }
        Assert.InRange(c[0].Left, 0, 24);
        Assert.InRange(c[^1].Right, image.Width - 40, image.Width);

        Assert.Throws<InvalidDataException>(() => reader.Read(Path.Combine(_folder, "missing.png")));
        Assert.Throws<InvalidDataException>(() => reader.Read(new byte[] { 1, 2, 3 }));
    }

    [Fact]
    public void OneReaderSharedByEightThreadsReadsAsSequentialCallsDo()
    {
        using var reader = TextRecognizer.Open(ImportedModel(), device: "cpu");
        var images = Words.Select(Image).ToArray();
        try
        {
            var sequential = images.Select(reader.Read).ToArray();
            Assert.Equal(Words, sequential.Select(r => r.Text));
            var batch = reader.ReadBatch(images);
            var watch = Stopwatch.StartNew();
            const int threads = 8, reads = 200;
            var mismatches = new int[threads];
            var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
            {
                for (int i = 0; i < reads; i++)
                {
                    int k = (t + i) % images.Length;
                    var r = reader.Read(images[k]);
                    if (r.Text != sequential[k].Text || r.Confidence != sequential[k].Confidence || r.Characters.Count != sequential[k].Characters.Count)
                        mismatches[t]++;
                }
            })).ToList();
            workers.ForEach(w => w.Start());
            workers.ForEach(w => w.Join());
            output.WriteLine($"{threads} threads × {reads} reads in {watch.Elapsed.TotalSeconds:F1} s");
            Assert.All(mismatches, m => Assert.Equal(0, m));
            // A batch holds images of other widths: the text is the same; the logits may differ in the last
            // float bits (a batch's width is its widest image's), so confidences are compared loosely.
            for (int k = 0; k < images.Length; k++)
            {
                Assert.Equal(sequential[k].Text, batch[k].Text);
                Assert.Equal(sequential[k].Confidence, batch[k].Confidence, 2e-3f);
            }
        }
        finally
        {
            foreach (var image in images) image.Dispose();
        }
    }
}
