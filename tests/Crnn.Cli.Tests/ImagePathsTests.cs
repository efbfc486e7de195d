using Xunit;

namespace Crnn.Cli.Tests;

public class ImagePathsTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("crnn-glob-").FullName;

    public ImagePathsTests()
    {
        foreach (var file in new[] { "e.png", "c.PNG", "d.txt", ".hidden.png", "a/1.png", "a/b/2.png", "a/b/3.jpg" })
        {
            string path = Path.Combine(_root, file);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, "");
        }
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    string[] In(params string[] names) => names.Select(n => $"{_root}/{n}").ToArray();

    [Fact]
    public void GlobsMatchLikeAShell()
    {
        Assert.Equal(In("e.png"), ImagePaths.Glob($"{_root}/*.png"));           // case-sensitive; * skips hidden names
        Assert.Equal(In(".hidden.png"), ImagePaths.Glob($"{_root}/.*.png"));
        Assert.Equal(In("e.png"), ImagePaths.Glob($"{_root}/?.png"));
        Assert.Equal(In("c.PNG", "e.png"), ImagePaths.Glob($"{_root}/[ce].*"));
        Assert.Equal(In("c.PNG", "d.txt"), ImagePaths.Glob($"{_root}/[!e].*"));
        Assert.Equal(In("a/1.png", "a/b/2.png", "e.png"), ImagePaths.Glob($"{_root}/**/*.png")); // ** is zero or more folders
        Assert.Equal(In("a/b/2.png", "a/b/3.jpg"), ImagePaths.Glob($"{_root}/a/*/*"));
        Assert.Empty(ImagePaths.Glob($"{_root}/nowhere/*.png"));
    }

    [Fact]
    public void FoldersGiveTheirImagesSortedAndFilesPassThrough()
    {
        Assert.Equal([Path.Combine(_root, "c.PNG"), Path.Combine(_root, "e.png"), "missing.png", Path.Combine(_root, "a", "1.png")],
            ImagePaths.Expand([_root, "missing.png", Path.Combine(_root, "a")]));
        string empty = Directory.CreateDirectory(Path.Combine(_root, "empty")).FullName;
        Assert.Contains("no images in folder", Assert.Throws<ArgumentException>(() => ImagePaths.Expand([empty])).Message);
        Assert.Contains("no files match", Assert.Throws<ArgumentException>(() => ImagePaths.Expand([$"{_root}/*.gif"])).Message);
    }
}
