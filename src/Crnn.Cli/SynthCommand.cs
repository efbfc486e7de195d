using System.CommandLine;
using System.Text;
using Crnn.Engine;
using Crnn.Engine.Synthetic;

namespace Crnn.Cli;

/// <summary><c>crnn synth</c>: writes synthetic word images and a PaddleOCR label file, e.g. to look at the
/// training data or to train another tool on it.</summary>
public static class SynthCommand
{
    public static Command Create()
    {
        var count = new Option<int>("--count") { Description = "number of images to write", Required = true };
        var output = new Option<string>("--output") { Description = "folder for images/ and labels.txt", Required = true };
        var seed = new Option<int>("--seed") { Description = "seed: image i is a function of (seed, i)", DefaultValueFactory = _ => 1 };
        var fonts = FontsOption();
        var exclude = ExcludeFontsOption();
        var dict = new Option<string?>("--dict") { Description = "dictionary file, one symbol per line (default: 0-9a-z)" };
        var space = new Option<bool>("--use-space-char") { Description = "append ' ' to the dictionary (allows two-word texts)" };
        var wordRatio = new Option<double>("--word-ratio") { Description = "share of dictionary words; the rest are random strings", DefaultValueFactory = _ => SyntheticOptions.Default.WordRatio };
        var plain = new Option<bool>("--no-augment") { Description = "plain dark text on a light background, no geometry or noise (= --effects none)" };
        var effects = new Option<string>("--effects")
        {
            Description = "effects preset: default (the training data), mild (noise, blur, small rotations only), none",
            DefaultValueFactory = _ => "default",
        };

        var command = new Command("synth", "Write synthetic text images (images/NNNNNN.png) and their labels.txt.");
        foreach (var o in new Option[] { count, output, seed, fonts, exclude, dict, space, wordRatio, plain, effects })
            command.Options.Add(o);
        command.SetAction(p => UserError.Guard(() => Run(new Settings(
            p.GetValue(count), p.GetValue(output)!, p.GetValue(seed), p.GetValue(dict), p.GetValue(space),
            new SyntheticOptions
            {
                Fonts = p.GetValue(fonts) ?? [], ExcludeFonts = p.GetValue(exclude) ?? [],
                WordRatio = p.GetValue(wordRatio), Augment = !p.GetValue(plain),
                Effects = SyntheticEffects.Named(p.GetValue(effects)!),
            }), Console.Out)));
        return command;
    }

    /// <summary>--fonts, shared with `crnn train`.</summary>
    public static Option<string[]> FontsOption() => new("--fonts")
    {
        Description = "font folders, files or glob patterns (default: every installed font except the held-out Noto Serif family)",
        AllowMultipleArgumentsPerToken = true,
    };

    /// <summary>--exclude-fonts, shared with `crnn train`.</summary>
    public static Option<string[]> ExcludeFontsOption() => new("--exclude-fonts")
    {
        Description = "glob patterns of fonts not to use (file name, or full path when the pattern has a '/')",
        AllowMultipleArgumentsPerToken = true,
    };

    public sealed record Settings(int Count, string Output, int Seed, string? Dict, bool UseSpaceChar, SyntheticOptions Options);

    public static int Run(Settings s, TextWriter log)
    {
        if (s.Count < 1) throw new ArgumentException($"--count must be at least 1, got {s.Count}");
        var dictionary = s.Dict is null ? CharDictionary.Default : CharDictionary.Load(s.Dict, s.UseSpaceChar);
        using var words = new SyntheticWords(dictionary, s.Seed, s.Options);
        log.WriteLine($"fonts: {words.FontPaths.Count} ({string.Join(", ", words.FontPaths.Take(3).Select(Path.GetFileName))}{(words.FontPaths.Count > 3 ? ", ..." : "")})");

        string images = Path.Combine(s.Output, "images");
        Directory.CreateDirectory(images);
        int digits = Math.Max(6, (s.Count - 1).ToString().Length);
        var lines = new string[s.Count];
        // Ten chunks, each rendered in parallel: one progress line per ~10 %.
        int chunk = Math.Max(1, (s.Count + 9) / 10);
        for (int start = 0; start < s.Count; start += chunk)
        {
            int end = Math.Min(s.Count, start + chunk);
            Parallel.For(start, end, i =>
            {
                string name = $"images/{i.ToString().PadLeft(digits, '0')}.png";
                lines[i] = $"{name}\t{words.SavePng(i, Path.Combine(s.Output, name))}";
            });
            log.WriteLine($"synth: {end}/{s.Count} images ({100L * end / s.Count}%)");
        }
        // The label file last, via a temporary name: a killed run never leaves labels for missing images.
        string labels = Path.Combine(s.Output, "labels.txt"), temporary = labels + ".tmp";
        File.WriteAllText(temporary, string.Join("\n", lines) + "\n", new UTF8Encoding(false));
        File.Move(temporary, labels, overwrite: true);
        log.WriteLine($"wrote {s.Count} images and {Path.GetFullPath(labels)}");
        return 0;
    }
}
