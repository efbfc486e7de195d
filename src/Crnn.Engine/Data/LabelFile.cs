using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
namespace Crnn.Engine.Data;

/// <summary>One labelled image of a PaddleOCR label file (<paramref name="Line"/>: 1-based, 0 when unknown).</summary>
public sealed record LabeledImage(string Path, string Text, int[] Label, int Line = 0);

/// <summary>
/// PaddleOCR's label-file format: one <c>image_path&lt;TAB&gt;text</c> per line, paths relative to the file.
/// Lines whose text the dictionary cannot encode, or that cannot be aligned in the model's time steps,
/// are skipped with a count, so one bad line does not stop a long run.
/// </summary>
public static class LabelFile
{
    public sealed record Result(IReadOnlyList<LabeledImage> Samples, SkipList Skipped);

    /// <param name="labelCase">applied to each text before encoding; Auto is resolved against the dictionary</param>
    /// <param name="strict">the first unusable line is an error instead of a skip</param>
    public static Result Read(string path, CharDictionary dictionary, int maxSteps, LabelCase labelCase = LabelCase.Keep, bool strict = false)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"label file not found: {path}");
        var resolved = labelCase.Resolve(dictionary);
        string root = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var samples = new List<LabeledImage>();
        var skipped = new SkipList(strict);
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Trim().Length == 0) continue;
            string where = $"{path}:{lineNumber}";
            int tab = line.IndexOf('\t');
            if (tab < 0) { skipped.Add(where, "no tab", "no tab between image path and text"); continue; }
            if (tab == 0) { skipped.Add(where, "no image path", "no image path before the tab"); continue; }
            string raw = line[(tab + 1)..].TrimEnd('\r');
            if (!LabelCheck.TryEncode(raw, dictionary, maxSteps, resolved, out var text, out var ids, out var reason, out var detail))
            {
                skipped.Add(where, reason, detail);
                continue;
            }
            samples.Add(new LabeledImage(Path.Combine(root, line[..tab]), text, ids, lineNumber));
        }
        if (samples.Count == 0)
            throw new InvalidDataException($"label file {path} has no usable samples" + (skipped.Count > 0 ? $" ({skipped.Summary()})" : " (it is empty)"));
        return new Result(samples, skipped);
    }

    /// <summary>CTC needs one step per symbol plus a blank between repeated symbols.</summary>
    public static bool Alignable(int[] label, int steps) => LabelCheck.Alignable(label, steps);
}

/// <summary>The samples of a label file (or any list of image files with texts), images decoded from disk.</summary>
public sealed class LabelFileDataset(IReadOnlyList<LabeledImage> samples, string name, SkipList? skipped = null) : ILabeledDataset
{
    public static LabelFileDataset Open(string path, CharDictionary dictionary, int maxSteps, LabelCase labelCase, bool strict = false)
    {
        var result = LabelFile.Read(path, dictionary, maxSteps, labelCase, strict);
        return new LabelFileDataset(result.Samples, path, result.Skipped);
    }

    public IReadOnlyList<LabeledImage> Samples => samples;
    public string Name => name;
    public int Count => samples.Count;
    public SkipList Skipped { get; } = skipped ?? new SkipList();
    public string Text(int index) => samples[index].Text;
    public int[] Label(int index) => samples[index].Label;
    public string Describe(int index) => samples[index].Line > 0 ? $"{name}:{samples[index].Line} ({samples[index].Path})" : samples[index].Path;
    public Image<Rgb24> Load(int index) => ImageDecoding.LoadFile(samples[index].Path);
    public void Dispose() { }
}
