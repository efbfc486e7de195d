using System.Text;
using System.Text.RegularExpressions;

namespace Crnn.Cli;

/// <summary>
/// The image paths of <c>crnn predict</c>'s arguments: a file as given, a folder as its images (by extension,
/// not hidden, sorted by name; not recursive), a glob pattern (<c>*</c>, <c>?</c>, <c>[abc]</c>, <c>**</c> for any depth) as its matching files,
/// sorted — expanded here because a shell may pass the pattern through (quoted, or on Windows).
/// </summary>
public static class ImagePaths
{
    /// <summary>Extensions ImageSharp decodes.</summary>
    static readonly HashSet<string> ImageExtensions = new(StringComparer.OrdinalIgnoreCase)
        { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tga", ".tif", ".tiff", ".pbm", ".pgm", ".ppm" };

    public static bool IsImageName(string path) => ImageExtensions.Contains(Path.GetExtension(path));

    public static IReadOnlyList<string> Expand(IEnumerable<string> inputs)
    {
        var paths = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
            {
                var images = Directory.EnumerateFiles(input)
                    .Where(f => IsImageName(f) && !Path.GetFileName(f).StartsWith('.')) // hidden files, e.g. macOS's ._x.png
                    .Order(StringComparer.Ordinal).ToList();
                if (images.Count == 0) throw new ArgumentException($"no images in folder '{input}'");
                paths.AddRange(images);
            }
            else if (!File.Exists(input) && IsPattern(input))
            {
                var matches = Glob(input);
                if (matches.Count == 0) throw new ArgumentException($"no files match '{input}'");
                paths.AddRange(matches);
            }
            else paths.Add(input); // a file, or a missing one that decoding reports
        }
        return paths;
    }

    static bool IsPattern(string path) => path.IndexOfAny(['*', '?', '[']) >= 0;

    /// <summary>Files matching <paramref name="pattern"/>, sorted, spelled with the pattern's own prefix.</summary>
    public static IReadOnlyList<string> Glob(string pattern)
    {
        var segments = pattern.Replace('\\', '/').Split('/');
        int first = Array.FindIndex(segments, IsPattern);
        string root = string.Join('/', segments[..first]);
        if (first == 0) root = "";
        else if (root.Length == 0) root = "/"; // an absolute pattern: "/x/*" splits as ["", "x", "*"]
        var matches = new List<string>();
        Match(root, segments[first..], matches);
        return matches.Distinct().Order(StringComparer.Ordinal).ToList();
    }

    static void Match(string folder, string[] segments, List<string> matches)
    {
        string where = folder.Length == 0 ? "." : folder;
        if (!Directory.Exists(where)) return;
        var segment = segments[0];
        var rest = segments[1..];
        if (segment == "**")
        {
            // zero folders, or one more level of folders with ** still to match
            if (rest.Length > 0) Match(folder, rest, matches);
            foreach (var sub in Directory.EnumerateDirectories(where))
                if (!Path.GetFileName(sub).StartsWith('.')) Match(Join(folder, Path.GetFileName(sub)), segments, matches);
            return;
        }
        if (rest.Length > 0 && !IsPattern(segment))
        {
            Match(Join(folder, segment), rest, matches);
            return;
        }
        var regex = SegmentRegex(segment);
        var entries = rest.Length == 0 ? Directory.EnumerateFiles(where) : Directory.EnumerateDirectories(where);
        foreach (var entry in entries)
        {
            string name = Path.GetFileName(entry);
            if (name.StartsWith('.') && !segment.StartsWith('.')) continue; // as shells do: * skips hidden names
            if (!regex.IsMatch(name)) continue;
            if (rest.Length == 0) matches.Add(Join(folder, name));
            else Match(Join(folder, name), rest, matches);
        }
    }

    static string Join(string folder, string name) => folder.Length == 0 ? name : folder.EndsWith('/') ? folder + name : $"{folder}/{name}";

    /// <summary>One path segment's pattern as an anchored regex: * any run, ? one character, [...] a class ([!...] negated).</summary>
    static Regex SegmentRegex(string segment)
    {
        var regex = new StringBuilder("^");
        for (int i = 0; i < segment.Length; i++)
        {
            char c = segment[i];
            int close = c == '[' ? segment.IndexOf(']', i + 2) : -1;
            if (c == '*') regex.Append(".*");
            else if (c == '?') regex.Append('.');
            else if (close > 0)
            {
                string set = segment[(i + 1)..close];
                regex.Append('[').Append(set.StartsWith('!') ? "^" + Regex.Escape(set[1..]) : Regex.Escape(set)).Append(']');
                i = close;
            }
            else regex.Append(Regex.Escape(c.ToString()));
        }
        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}
