using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using SkiaSharp;

namespace Crnn.Engine.Synthetic;

/// <summary>One usable font: its file and the loaded typeface.</summary>
public sealed record FontFace(string Path, SKTypeface Typeface)
{
    public string Name => System.IO.Path.GetFileName(Path);
}

/// <summary>
/// The fonts the generator renders with: found at run time (system folders, or the folders, files and glob
/// patterns the user names), minus excluded patterns, keeping only fonts that load and have a visible glyph for
/// every dictionary symbol. Sorted by path so font i is the same file on every run of one machine.
/// Catalogs are cached per (fonts, excludes, dictionary) for the process: the trainer, its validation set and
/// the tests build many generators, and loading a few hundred font files each time would dominate.
/// </summary>
public sealed class FontCatalog
{
    /// <summary>The family kept out of training so accuracy on an unseen font can be measured.</summary>
    public const string HeldOutPattern = "NotoSerif*";

    /// <summary>Families reserved for evaluation by others (Lora, Roboto Slab, Courier Prime): never trained on,
    /// whatever the font folders hold, even when named with --fonts.</summary>
    public static readonly IReadOnlyList<string> ReservedPatterns = ["Lora*", "RobotoSlab*", "Roboto-Slab*", "Roboto Slab*", "CourierPrime*", "Courier Prime*", "Courier-Prime*"];

    /// <summary>Weights too thin to survive blur and low resolution at 32 px, left out of the system fonts.</summary>
    public static readonly IReadOnlyList<string> TooThinPatterns = ["*Hairline*", "*-Thin.*", "*-ThinItalic.*"];

    static readonly ConcurrentDictionary<string, FontCatalog> Cache = new();

    public IReadOnlyList<FontFace> Fonts { get; }
    /// <summary>The fonts grouped by family name (first appearance in path order): samples draw a family, then a
    /// style of it, so a family shipped in 30 weights is not drawn 30 times as often as one in a single file.</summary>
    public IReadOnlyList<IReadOnlyList<FontFace>> Families { get; }
    /// <summary>"path: reason" for every candidate that was not kept.</summary>
    public IReadOnlyList<string> Skipped { get; }

    FontCatalog(IReadOnlyList<FontFace> fonts, IReadOnlyList<string> skipped)
    {
        Fonts = fonts;
        Families = [.. fonts.GroupBy(f => f.Typeface.FamilyName ?? f.Name).Select(g => (IReadOnlyList<FontFace>)[.. g])];
        Skipped = skipped;
    }

    public static IEnumerable<string> SystemFontRoots()
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string[] roots = ["/usr/share/fonts", "/usr/local/share/fonts",
            home.Length > 0 ? Path.Combine(home, ".fonts") : "", home.Length > 0 ? Path.Combine(home, ".local/share/fonts") : "",
            Environment.GetFolderPath(Environment.SpecialFolder.Fonts), "/System/Library/Fonts", "/Library/Fonts"];
        return roots.Where(r => r.Length > 0 && Directory.Exists(r)).Distinct();
    }

    /// <summary>The catalog for these options and dictionary (cached; warnings are logged on the first load only).</summary>
    public static FontCatalog For(CharDictionary dictionary, SyntheticOptions options)
    {
        string key = string.Join('\u0001', options.Fonts) + '\u0002' + string.Join('\u0001', options.ExcludeFonts)
                     + '\u0002' + string.Concat(dictionary.Symbols);
        if (Cache.TryGetValue(key, out var cached)) return cached;
        var catalog = Load(dictionary, options);
        return Cache.GetOrAdd(key, catalog);
    }

    static FontCatalog Load(CharDictionary dictionary, SyntheticOptions options)
    {
        var log = options.Log ?? (m => Console.Error.WriteLine($"warning: {m}"));
        bool explicitFonts = options.Fonts.Count > 0;
        var candidates = explicitFonts
            ? options.Fonts.SelectMany(Resolve)
            : SystemFontRoots().SelectMany(r => FontFilesUnder(r));
        var excludes = options.ExcludeFonts.Concat(ReservedPatterns).Concat(explicitFonts ? [] : TooThinPatterns).Select(Glob).ToList();
        var files = candidates.Select(Path.GetFullPath).Distinct().Order(StringComparer.Ordinal)
            .Where(f => !excludes.Any(g => g.Matches(f))).ToList();

        // The upper-case forms too: words are drawn UPPER or Capitalized for dictionaries without them.
        var visible = dictionary.Symbols.Where(s => !string.IsNullOrWhiteSpace(s))
            .SelectMany(s => new[] { s, s.ToUpperInvariant() }).Distinct().ToArray();
        var fonts = new List<FontFace>();
        var heldOut = new List<FontFace>();
        var skipped = new List<string>();
        var heldOutGlob = Glob(HeldOutPattern);
        string? firstMissing = null;
        foreach (var file in files)
        {
            var typeface = TryLoad(file, out string? loadError);
            if (typeface is null)
            {
                skipped.Add($"{file}: {loadError}");
                log($"skipping font {file}: {loadError}");
                continue;
            }
            var missing = MissingSymbols(typeface, visible);
            if (missing.Count > 0)
            {
                string reason = $"no glyph for {missing.Count} dictionary symbol(s), e.g. '{string.Join("", missing.Take(10))}'";
                skipped.Add($"{file}: {reason}");
                firstMissing ??= $"{Path.GetFileName(file)} has {reason}";
                if (explicitFonts) log($"skipping font {file}: {reason}");
                typeface.Dispose();
                continue;
            }
            (!explicitFonts && heldOutGlob.Matches(file) ? heldOut : fonts).Add(new FontFace(file, typeface));
        }
        if (fonts.Count == 0 && heldOut.Count > 0)
        {
            log($"only the held-out font family ({HeldOutPattern}) is usable; training on it");
            fonts = heldOut;
        }
        else foreach (var f in heldOut) f.Typeface.Dispose();

        if (fonts.Count == 0)
        {
            string where = explicitFonts ? string.Join(", ", options.Fonts) : string.Join(", ", SystemFontRoots());
            throw new ArgumentException(files.Count == 0
                ? $"no usable font: no .ttf/.otf file found in {(where.Length > 0 ? where : "the system font folders")}{(options.ExcludeFonts.Count > 0 ? " after --exclude-fonts" : "")}; install fonts (tools/setup.sh) or pass --fonts"
                : $"no usable font among {files.Count} file(s) in {where}: {firstMissing ?? skipped[0]}; choose fonts that cover the dictionary");
        }
        return new FontCatalog(fonts, skipped);
    }

    static SKTypeface? TryLoad(string file, out string? error)
    {
        error = null;
        try
        {
            var typeface = SKTypeface.FromFile(file);
            if (typeface is null) error = "not a readable TrueType/OpenType font";
            return typeface;
        }
        catch (Exception e) // a corrupt font must never stop a run: skip it with the reason
        {
            error = e.Message;
            return null;
        }
    }

    /// <summary>Symbols without a glyph, or whose glyph draws nothing (the model would learn an empty box).</summary>
    static List<string> MissingSymbols(SKTypeface typeface, string[] symbols)
    {
        using var font = new SKFont(typeface, 24);
        var missing = new List<string>();
        foreach (var s in symbols)
        {
            var glyphs = font.GetGlyphs(s);
            bool ok = glyphs.Length > 0 && glyphs.All(g => g != 0);
            if (ok)
            {
                font.MeasureText(s, out var bounds);
                ok = bounds.Width > 0 && bounds.Height > 0;
            }
            if (!ok) missing.Add(s);
        }
        return missing;
    }

    static bool IsFontFile(string path) =>
        path.EndsWith(".ttf", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".otf", StringComparison.OrdinalIgnoreCase);

    static IEnumerable<string> FontFilesUnder(string folder) =>
        Directory.EnumerateFiles(folder, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true })
            .Where(IsFontFile);

    /// <summary>A --fonts entry: a folder (its font files, recursively), a file, or a glob pattern.</summary>
    static IEnumerable<string> Resolve(string entry)
    {
        if (Directory.Exists(entry)) return FontFilesUnder(entry).ToList();
        if (File.Exists(entry)) return [entry];
        if (entry.IndexOfAny(['*', '?']) < 0) throw new FileNotFoundException($"font file or folder not found: {entry}");
        string full = Path.GetFullPath(entry);
        int wildcard = full.IndexOfAny(['*', '?']);
        string root = full[..(full.LastIndexOf('/', wildcard) + 1)];
        var glob = Glob(full);
        var matches = Directory.Exists(root) ? FontFilesUnder(root).Where(f => glob.Matches(Path.GetFullPath(f))).ToList() : [];
        if (matches.Count == 0) throw new FileNotFoundException($"no .ttf/.otf font matches '{entry}'");
        return matches;
    }

    /// <summary>A glob: '*' and '?' stay within a path segment, '**' crosses them; case-insensitive. A pattern with
    /// no '/' matches the file name, otherwise the full path.</summary>
    sealed record GlobPattern(Regex Regex, bool FullPath)
    {
        public bool Matches(string path) => Regex.IsMatch(FullPath ? path : Path.GetFileName(path));
    }

    static GlobPattern Glob(string pattern)
    {
        bool fullPath = pattern.Contains('/');
        if (fullPath && !pattern.StartsWith('/') && !pattern.StartsWith("**")) pattern = Path.GetFullPath(pattern);
        string regex = "^" + Regex.Escape(pattern).Replace(@"\*\*", "\u0001").Replace(@"\*", "[^/]*")
            .Replace(@"\?", "[^/]").Replace("\u0001", ".*") + "$";
        return new GlobPattern(new Regex(regex, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant), fullPath);
    }
}
