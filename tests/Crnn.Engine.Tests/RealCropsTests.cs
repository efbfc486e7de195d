using System.Text.RegularExpressions;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace Crnn.Engine.Tests;

/// <summary>
/// data/real-crops, the development set of word crops from photographs (evaluation only), is well-formed:
/// its PaddleOCR label file parses, every crop is there and decodes, and the README names a licence for every source.
/// </summary>
public class RealCropsTests
{
    static readonly string Root = Path.Combine(RepoRoot(), "data", "real-crops");

    static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Crnn.Gpu.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("no Crnn.Gpu.sln above " + AppContext.BaseDirectory);
    }

    static List<(string Path, string Text)> Labels()
    {
        var lines = File.ReadAllLines(Path.Combine(Root, "labels.txt"));
        var labels = new List<(string, string)>();
        foreach (var line in lines)
        {
            Assert.False(string.IsNullOrWhiteSpace(line), "blank line in labels.txt");
            var tab = line.IndexOf('\t');
            Assert.True(tab > 0, $"no tab: {line}");
            Assert.Equal(-1, line.IndexOf('\t', tab + 1));
            labels.Add((line[..tab], line[(tab + 1)..]));
        }
        return labels;
    }

    [Fact]
    public void LabelFileParsesWithEnoughDistinctCrops()
    {
        var labels = Labels();
        Assert.True(labels.Count >= 150, $"only {labels.Count} crops");
        var duplicates = labels.GroupBy(l => l.Path, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.Empty(duplicates);
    }

    [Fact]
    public void EveryLabelHasAnAsciiLetterOrDigitAndAtMost25Characters()
    {
        foreach (var (path, text) in Labels())
        {
            Assert.True(text.Any(char.IsAsciiLetterOrDigit), $"{path}: '{text}' has no ASCII letter or digit");
            Assert.True(text.Length <= 25, $"{path}: '{text}' is longer than 25 characters");
            Assert.Equal(text.Trim(), text);
        }
    }

    [Fact]
    public void EveryCropExistsAndDecodes()
    {
        foreach (var (path, _) in Labels())
        {
            Assert.False(Path.IsPathRooted(path), $"{path} is not relative");
            Assert.DoesNotContain("\\", path);
            var file = Path.Combine(Root, path);
            Assert.True(File.Exists(file), $"{path} is missing");
            using var image = Image.Load<Rgb24>(file);
            Assert.True(image.Width >= 4 && image.Height >= 4, $"{path} is {image.Width}x{image.Height}");
        }
    }

    [Fact]
    public void EveryImageIsLabelled()
    {
        var labelled = Labels().Select(l => l.Path).ToHashSet();
        var images = Directory.EnumerateFiles(Root, "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".png", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase))
            .Select(f => Path.GetRelativePath(Root, f).Replace('\\', '/'));
        var unlabelled = images.Where(i => !labelled.Contains(i)).ToList();
        Assert.Empty(unlabelled);
    }

    [Fact]
    public void ReadmeNamesALicenceForEverySourceFolder()
    {
        var readme = File.ReadAllLines(Path.Combine(Root, "README.md"));
        var folders = Labels().Select(l => l.Path.Split('/')[0]).Distinct().ToList();
        Assert.True(folders.Count > 1);
        foreach (var folder in folders)
        {
            // A provenance row: | `folder/` ... | source | licence | crops | labels | caveats |
            var rows = readme.Where(l => l.StartsWith($"| `{folder}/`", StringComparison.Ordinal)).ToList();
            Assert.True(rows.Count > 0, $"README has no provenance row for {folder}/");
            foreach (var row in rows)
            {
                var cells = row.Split('|');
                Assert.True(cells.Length >= 5, $"malformed row for {folder}/");
                Assert.Matches(new Regex("licen[cs]e|none stated", RegexOptions.IgnoreCase), cells[3]);
            }
        }
    }
}
