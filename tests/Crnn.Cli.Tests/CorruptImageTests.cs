using Crnn.Engine;
using Xunit;

namespace Crnn.Cli.Tests;

/// <summary>With --strict, a damaged image met while training (decoded on the prefetch worker) is a one-line
/// user error (without it the image is skipped: DataCommandTests).</summary>
public class CorruptImageTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("crnn-corrupt-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void TruncatedTrainingImageWithStrictIsAOneLineErrorWithExitCode2()
    {
        using var words = new SyntheticWords(CharDictionary.Default, seed: 5);
        string good = Path.Combine(_folder, "good.png"), cut = Path.Combine(_folder, "cut.png");
        string text = words.SavePng(0, good);
        var bytes = File.ReadAllBytes(good);
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
        string labels = Path.Combine(_folder, "labels.txt");
        File.WriteAllLines(labels, [$"good.png\t{text}", $"cut.png\t{text}"]);

        Cli.AssertUserError(Cli.Run("train", "--train", labels, "--strict", "--steps", "2", "--batch-size", "2", "--device", "cpu", "--val-count", "2", "--output", Path.Combine(_folder, "run")),
            $"error: cannot read image '{cut}': truncated");
    }
}
