using Crnn.Engine;
using Crnn.Engine.Data;
using Crnn.Engine.Synthetic;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace Crnn.Cli.Tests;

/// <summary>`crnn synth`: images and a PaddleOCR label file that the readers of `crnn train` accept.</summary>
public class SynthCommandTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-synth-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void WritesCountPngsWhoseLabelFileRoundTrips()
    {
        const int count = 23;
        var log = new StringWriter();
        var settings = new SynthCommand.Settings(count, _folder, Seed: 4, Dict: null, UseSpaceChar: false, new SyntheticOptions());
        Assert.Equal(0, SynthCommand.Run(settings, log));

        var pngs = Directory.GetFiles(Path.Combine(_folder, "images"), "*.png").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(count, pngs.Count);
        Assert.Equal("000000.png", Path.GetFileName(pngs[0]));
        Assert.Equal("000022.png", Path.GetFileName(pngs[^1]));
        Assert.False(File.Exists(Path.Combine(_folder, "labels.txt.tmp")));

        var labels = LabelFile.Read(Path.Combine(_folder, "labels.txt"), CharDictionary.Default, maxSteps: 25);
        Assert.Equal(0, labels.Skipped.Count);
        Assert.Equal(pngs, labels.Samples.Select(s => s.Path));
        using var words = new SyntheticWords(CharDictionary.Default, seed: 4);
        for (int i = 0; i < count; i++)
        {
            Assert.Equal(words.Render(i).Text, labels.Samples[i].Text); // image i is sample i of the seed
            using var image = Image.Load<Rgb24>(labels.Samples[i].Path);
            Assert.Equal(32, image.Height);
        }
        // About ten progress lines, the last at 100 %.
        var progress = log.ToString().Split('\n').Where(l => l.StartsWith("synth: ")).ToList();
        Assert.InRange(progress.Count, 8, 11);
        Assert.Contains("(100%)", progress[^1]);
    }

    [Fact]
    public void SpaceDictionaryAndFontChoiceReachTheGenerator()
    {
        string dict = Path.Combine(_folder, "dict.txt");
        File.WriteAllLines(dict, "abcdefghijklmnopqrstuvwxyz".Select(c => c.ToString()));
        string dejavu = FontCatalog.SystemFontRoots()
            .SelectMany(r => Directory.EnumerateFiles(r, "DejaVuSans.ttf", SearchOption.AllDirectories)).First();
        string output = Path.Combine(_folder, "out");
        var settings = new SynthCommand.Settings(40, output, Seed: 1, dict, UseSpaceChar: true,
            new SyntheticOptions { Fonts = [dejavu], WordRatio = 1 });
        var log = new StringWriter();
        Assert.Equal(0, SynthCommand.Run(settings, log));
        Assert.Contains("fonts: 1 (DejaVuSans.ttf)", log.ToString());
        var labels = LabelFile.Read(Path.Combine(output, "labels.txt"), CharDictionary.Load(dict, useSpaceChar: true), maxSteps: 25);
        Assert.Equal(40, labels.Samples.Count);
        Assert.Contains(labels.Samples, s => s.Text.Contains(' '));
    }

    /// <summary>--effects mild writes the generator's mild preset (noise, blur, small rotations; the held-out
    /// evaluation style): the same words as the default and plain presets, drawn differently from both.</summary>
    [Fact]
    public void EffectsPresetReachesTheGenerator()
    {
        const int count = 8;
        Assert.Equal(0, Cli.Run("synth", "--count", $"{count}", "--seed", "3", "--effects", "mild", "--output", _folder).Code);
        var labels = LabelFile.Read(Path.Combine(_folder, "labels.txt"), CharDictionary.Default, maxSteps: 25);
        using var mild = new SyntheticWords(CharDictionary.Default, seed: 3, new SyntheticOptions { Effects = SyntheticEffects.Mild });
        using var plain = new SyntheticWords(CharDictionary.Default, seed: 3, new SyntheticOptions { Effects = SyntheticEffects.None });
        using var full = new SyntheticWords(CharDictionary.Default, seed: 3);
        int differsFromPlain = 0, differsFromDefault = 0;
        for (int i = 0; i < count; i++)
        {
            var word = mild.Render(i);
            using var image = Image.Load<Rgb24>(labels.Samples[i].Path);
            var rgb = new byte[image.Width * image.Height * 3];
            image.CopyPixelDataTo(rgb);
            Assert.Equal(word.Rgb, rgb);
            Assert.Equal(word.Text, labels.Samples[i].Text);
            Assert.Equal(plain.Render(i).Text, word.Text);
            if (!plain.Render(i).Rgb.AsSpan().SequenceEqual(word.Rgb)) differsFromPlain++;
            if (!full.Render(i).Rgb.AsSpan().SequenceEqual(word.Rgb)) differsFromDefault++;
        }
        Assert.InRange(differsFromPlain, count / 2, count);
        Assert.Equal(count, differsFromDefault);
    }

    [Theory]
    [InlineData("synth --count 0 --output {0}", "--count must be at least 1")]
    [InlineData("synth --count 2 --output {0} --fonts /nonexistent/font.ttf", "/nonexistent/font.ttf")]
    [InlineData("synth --count 2 --output {0} --word-ratio 2", "word ratio")]
    [InlineData("synth --count 2 --output {0} --dict /nonexistent/dict.txt", "/nonexistent/dict.txt")]
    [InlineData("synth --count 2 --output {0} --effects wild", "no synthetic effects preset 'wild'")]
    public void UserErrorsAreOneLineExitCode2AndWriteNoLabels(string args, string message)
    {
        Cli.AssertUserError(Cli.Run(string.Format(args, _folder)), message);
        Assert.False(File.Exists(Path.Combine(_folder, "labels.txt")));
    }
}
