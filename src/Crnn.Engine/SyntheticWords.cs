using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SkiaSharp;

namespace Crnn.Engine;

/// <summary>One preprocessed sample: CHW image [3, 32, 100] in [−1, 1], its text and class ids.</summary>
public sealed record Sample(float[] Image, string Text, int[] Label);

/// <summary>A rendered word before preprocessing: interleaved RGB bytes, Width × Height.</summary>
public sealed record RenderedWord(byte[] Rgb, int Width, int Height, string Text);

/// <summary>
/// Random words of 1–10 dictionary symbols rendered with SkiaSharp: dark text on a light background, random
/// font size, offsets and shades. Sample i is a pure function of (seed, i) — its own System.Random is seeded
/// from both — so a stream resumes exactly from <see cref="Position"/> and a batch renders in parallel
/// without changing a pixel.
/// </summary>
public sealed class SyntheticWords : IDisposable
{
    public const int MinLength = 1, MaxLength = 10;
    const int RenderHeight = 32;

    readonly CharDictionary _dictionary;
    readonly SKTypeface _typeface;
    readonly string[] _edgeSymbols; // symbols allowed first and last: a leading or trailing space would be invisible

    public int Seed { get; }
    /// <summary>Samples drawn so far; the next sample is number Position. Set it to resume a stream.</summary>
    public long Position { get; set; }
    public string FontPath { get; }
    public int OutHeight { get; }
    public int OutWidth { get; }

    public SyntheticWords(CharDictionary dictionary, int seed, string? fontPath = null, int outHeight = 32, int outWidth = 100)
    {
        _dictionary = dictionary;
        Seed = seed;
        OutHeight = outHeight;
        OutWidth = outWidth;
        FontPath = fontPath ?? FindFont();
        _typeface = SKTypeface.FromFile(FontPath)
            ?? throw new InvalidDataException($"cannot load font '{FontPath}' (missing or not a TrueType/OpenType file)");
        CheckGlyphs();
        _edgeSymbols = [.. dictionary.Symbols.Where(s => !string.IsNullOrWhiteSpace(s))];
        if (_edgeSymbols.Length == 0) throw new ArgumentException("the dictionary has only whitespace symbols; nothing visible to render");
    }

    /// <summary>DejaVuSans.ttf if installed, else the first .ttf found under the usual font folders.</summary>
    public static string FindFont()
    {
        string[] roots = ["/usr/share/fonts", "/usr/local/share/fonts",
            Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".fonts"),
            Environment.GetFolderPath(Environment.SpecialFolder.Fonts), "/System/Library/Fonts", "/Library/Fonts"];
        var fonts = roots.Where(r => r.Length > 0 && Directory.Exists(r))
            .SelectMany(r => Directory.EnumerateFiles(r, "*.ttf", SearchOption.AllDirectories))
            .Order(StringComparer.Ordinal).ToList();
        return fonts.FirstOrDefault(f => Path.GetFileName(f) == "DejaVuSans.ttf")
            ?? fonts.FirstOrDefault()
            ?? throw new FileNotFoundException($"no .ttf font found under {string.Join(", ", roots.Where(r => r.Length > 0))}; install fonts-dejavu or pass a font path");
    }

    /// <summary>Every symbol must have a glyph, or the model would learn to read the font's "missing" box.</summary>
    void CheckGlyphs()
    {
        using var font = new SKFont(_typeface, 20);
        var missing = _dictionary.Symbols.Where(s => s != " " && font.GetGlyphs(s).Any(g => g == 0)).ToList();
        if (missing.Count > 0)
            throw new ArgumentException($"font '{FontPath}' has no glyph for {missing.Count} dictionary symbol(s), e.g. '{string.Join("", missing.Take(10))}'; choose another font");
    }

    /// <summary>The random choices of sample <paramref name="index"/>, drawn from its own generator.</summary>
    sealed record Plan(string Text, float FontSize, float Left, float Right, float BaselineShift, byte Background, byte Ink, int Tint);

    Plan PlanOf(long index)
    {
        var rng = new Random(SampleSeed(Seed, index));
        var symbols = _dictionary.Symbols;
        int length = rng.Next(MinLength, MaxLength + 1);
        var text = new StringBuilder();
        for (int i = 0; i < length; i++)
            text.Append(i == 0 || i == length - 1 ? _edgeSymbols[rng.Next(_edgeSymbols.Length)] : symbols[rng.Next(symbols.Count)]);
        return new Plan(
            text.ToString(),
            FontSize: 18 + 8 * rng.NextSingle(),
            Left: 1 + 5 * rng.NextSingle(),
            Right: 1 + 5 * rng.NextSingle(),
            BaselineShift: -2 + 4 * rng.NextSingle(),
            Background: (byte)rng.Next(190, 256),
            Ink: (byte)rng.Next(0, 70),
            Tint: rng.Next(-12, 13));
    }

    /// <summary>SplitMix64 of (seed, index): neighbouring indices get unrelated generators.</summary>
    static int SampleSeed(int seed, long index)
    {
        ulong z = ((ulong)(uint)seed << 32) ^ (ulong)index;
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }

    /// <summary>Renders sample <paramref name="index"/> at height 32, as wide as its text.</summary>
    public RenderedWord Render(long index)
    {
        var plan = PlanOf(index);
        using var font = new SKFont(_typeface, plan.FontSize) { Edging = SKFontEdging.Antialias, Subpixel = true };
        float advance = font.MeasureText(plan.Text);
        int width = Math.Max(1, (int)MathF.Ceiling(plan.Left + advance + plan.Right));
        var metrics = font.Metrics; // Ascent < 0 < Descent
        float baseline = (RenderHeight - (metrics.Descent - metrics.Ascent)) / 2 - metrics.Ascent + plan.BaselineShift;

        var info = new SKImageInfo(width, RenderHeight, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(Shade(plan.Background, plan.Tint));
            using var paint = new SKPaint { Color = Shade(plan.Ink, -plan.Tint), IsAntialias = true };
            canvas.DrawText(plan.Text, plan.Left, baseline, SKTextAlign.Left, font, paint);
        }
        var rgba = bitmap.GetPixelSpan();
        var rgb = new byte[width * RenderHeight * 3];
        for (int p = 0, q = 0; q < rgb.Length; p += 4, q += 3)
        {
            rgb[q] = rgba[p];
            rgb[q + 1] = rgba[p + 1];
            rgb[q + 2] = rgba[p + 2];
        }
        return new RenderedWord(rgb, width, RenderHeight, plan.Text);
    }

    /// <summary>A gray level tinted slightly toward blue (tint > 0) or red (tint &lt; 0).</summary>
    static SKColor Shade(byte level, int tint) =>
        new(Clamp(level - tint), level, Clamp(level + tint));

    static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);

    /// <summary>Sample <paramref name="index"/> preprocessed into <paramref name="chw"/> [3, OutHeight, OutWidth].</summary>
    public (string Text, int[] Label) Sample(long index, Span<float> chw)
    {
        var word = Render(index);
        Preprocess.ResizeNormalize(word.Rgb, word.Width, word.Height, chw, OutHeight, OutWidth);
        return (word.Text, _dictionary.Encode(word.Text));
    }

    /// <summary>The next sample of the stream.</summary>
    public Sample Next()
    {
        var image = new float[Preprocess.Channels * OutHeight * OutWidth];
        var (text, label) = Sample(Position++, image);
        return new Sample(image, text, label);
    }

    /// <summary>The next texts.Length samples into images [B, 3, OutHeight, OutWidth], rendered in parallel.</summary>
    public void NextBatch(float[] images, string[] texts, int[][] labels)
    {
        int batch = texts.Length, size = Preprocess.Channels * OutHeight * OutWidth;
        if (labels.Length != batch || images.Length != batch * size)
            throw new ArgumentException($"a batch of {batch} needs {batch} labels and {batch * size} floats, got {labels.Length} and {images.Length}");
        long first = Position;
        Parallel.For(0, batch, b => (texts[b], labels[b]) = Sample(first + b, images.AsSpan(b * size, size)));
        Position += batch;
    }

    /// <summary>Saves sample <paramref name="index"/> as rendered (before preprocessing) to a PNG; returns its text.</summary>
    public string SavePng(long index, string path)
    {
        var word = Render(index);
        using var image = Image.LoadPixelData<Rgb24>(word.Rgb, word.Width, word.Height);
        image.SaveAsPng(path);
        return word.Text;
    }

    public void Dispose() => _typeface.Dispose();
}
