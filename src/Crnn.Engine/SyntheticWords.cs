using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SkiaSharp;
using Crnn.Engine.Synthetic;

namespace Crnn.Engine;

/// <summary>One preprocessed sample: CHW image [3, 32, 100] in [−1, 1], its text and class ids.</summary>
public sealed record Sample(float[] Image, string Text, int[] Label);

/// <summary>A rendered word before preprocessing: interleaved RGB bytes, Width × Height.</summary>
public sealed record RenderedWord(byte[] Rgb, int Width, int Height, string Text);

/// <summary>
/// Synthetic text-line images: words and random strings (<see cref="TextSampler"/>) rendered with SkiaSharp in
/// every usable installed font (<see cref="FontCatalog"/>) with mild, seeded augmentations — colours (sometimes
/// light on dark), background gradients, blobs and rules, rotation, shear, letter spacing, width and weight,
/// padding and slight cropping, then blur, noise and contrast in plain C#. Sample i is a pure function of
/// (seed, i) — its own System.Random is seeded from both — so a stream resumes exactly from
/// <see cref="Position"/> and a batch renders in parallel without changing a pixel.
/// </summary>
public sealed class SyntheticWords : IDisposable
{
    public const int MinLength = 1;
    /// <summary>Longest text: the model's 25 CTC time steps.</summary>
    public const int MaxLength = 25;
    const int RenderHeight = 32;
    const float NominalSize = 28; // layout is computed at this font size, then the canvas scales it to 32 px

    readonly CharDictionary _dictionary;
    readonly FontCatalog _fonts;
    readonly TextSampler _texts;

    public int Seed { get; }
    /// <summary>Samples drawn so far; the next sample is number Position. Set it to resume a stream.</summary>
    public long Position { get; set; }
    public SyntheticOptions Options { get; }
    /// <summary>The font files samples are rendered with, in catalog order.</summary>
    public IReadOnlyList<string> FontPaths => [.. _fonts.Fonts.Select(f => f.Path)];
    /// <summary>The preprocessing of the samples (default: the seed model's 32 × 100 RGB).</summary>
    public Data.ImageFormat Format { get; }
    public int OutHeight => Format.Height;
    public int OutWidth => Format.Width;

    public SyntheticWords(CharDictionary dictionary, int seed, SyntheticOptions? options = null, Data.ImageFormat? format = null)
    {
        Options = options ?? SyntheticOptions.Default;
        Options.Validate();
        _dictionary = dictionary;
        Seed = seed;
        Format = format ?? Data.ImageFormat.Seed;
        _texts = new TextSampler(dictionary, Options.WordRatio, steps: MaxLength);
        _fonts = FontCatalog.For(dictionary, Options);
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

    /// <summary>The font sample <paramref name="index"/> is rendered with.</summary>
    public string FontOf(long index) => Draw(index).Font.Path;

    /// <summary>The random choices of one sample, drawn in a fixed order from its own generator.</summary>
    sealed record Plan(Random Rng, string Text, FontFace Font);

    Plan Draw(long index)
    {
        var rng = new Random(SampleSeed(Seed, index));
        string text = _texts.Next(rng);
        var font = _fonts.Fonts[rng.Next(_fonts.Fonts.Count)];
        return new Plan(rng, text, font);
    }

    /// <summary>Renders sample <paramref name="index"/> at height 32, as wide as its text.</summary>
    public RenderedWord Render(long index)
    {
        var (rng, text, face) = Draw(index);
        bool aug = Options.Augment;
        bool Chance(double p) => aug && rng.NextDouble() < p;

        // Colours: ink and paper at least ~110 gray levels apart; a fifth of augmented samples are light on dark.
        bool inverse = Chance(0.2);
        int paper = inverse ? rng.Next(0, 90) : aug ? rng.Next(150, 256) : rng.Next(190, 256);
        int ink = inverse ? rng.Next(paper + 110, 256) : aug ? rng.Next(0, paper - 109) : rng.Next(0, 70);
        int tint = aug ? 40 : 12;
        var paperColor = Tinted(paper, tint, rng);
        var inkColor = Tinted(ink, tint, rng);
        int contrast = Math.Abs(paper - ink);

        // Font and layout in nominal units (font size 28).
        using var font = new SKFont(face.Typeface, NominalSize) { Edging = SKFontEdging.Antialias, Subpixel = true };
        if (Chance(0.5)) font.ScaleX = 0.8f + 0.4f * rng.NextSingle();
        if (Chance(0.15)) font.Embolden = true;
        float spacing = Chance(0.3) ? NominalSize * (-0.04f + 0.3f * rng.NextSingle()) : 0;
        var widths = font.GetGlyphWidths(text);
        var positions = new float[widths.Length];
        float pen = 0;
        for (int g = 0; g < widths.Length; g++) { positions[g] = pen; pen += widths[g] + spacing; }
        float advance = pen - spacing;
        font.MeasureText(text, out var ink0);
        var metrics = font.Metrics;
        float capHeight = metrics.CapHeight > 0 ? metrics.CapHeight : -metrics.Ascent * 0.7f;
        // The text box spans cap height to baseline at least, so short lower-case words keep their scale.
        var box = new SKRect(Math.Min(0, ink0.Left), Math.Min(ink0.Top, -capHeight),
            Math.Max(advance, ink0.Right + spacing * (widths.Length - 1)), Math.Max(ink0.Bottom, 0));

        float rotation = Chance(0.5) ? -4 + 8 * rng.NextSingle() : 0;
        float shear = Chance(0.3) ? -0.25f + 0.5f * rng.NextSingle() : 0;
        var toCentre = SKMatrix.CreateTranslation(-box.MidX, -box.MidY);
        var geometry = SKMatrix.Concat(SKMatrix.CreateSkew(shear, 0), SKMatrix.Concat(SKMatrix.CreateRotationDegrees(rotation), toCentre));
        var bounds = geometry.MapRect(box);

        float h = box.Height;
        float padLeft = h * (aug ? 0.02f + 0.45f * rng.NextSingle() : 0.05f + 0.2f * rng.NextSingle());
        float padRight = h * (aug ? 0.02f + 0.45f * rng.NextSingle() : 0.05f + 0.2f * rng.NextSingle());
        float padTop = h * (aug ? 0.04f + 0.35f * rng.NextSingle() : 0.1f + 0.15f * rng.NextSingle());
        float padBottom = h * (aug ? 0.04f + 0.35f * rng.NextSingle() : 0.1f + 0.15f * rng.NextSingle());
        if (Chance(0.1)) padTop = -0.06f * h * rng.NextSingle(); // crop jitter: may shave the top of tall letters
        if (Chance(0.1)) padBottom = -0.06f * h * rng.NextSingle();

        float scale = RenderHeight / (bounds.Height + padTop + padBottom);
        int width = Math.Max(1, (int)MathF.Ceiling((bounds.Width + padLeft + padRight) * scale));

        var info = new SKImageInfo(width, RenderHeight, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        using (var canvas = new SKCanvas(bitmap))
        {
            PaintBackground(canvas, width, paperColor, inkColor, contrast, inverse, rng, aug);
            var toCanvas = SKMatrix.Concat(SKMatrix.CreateScale(scale, scale),
                SKMatrix.Concat(SKMatrix.CreateTranslation(padLeft - bounds.Left, padTop - bounds.Top), geometry));
            canvas.SetMatrix(toCanvas);
            using var paint = new SKPaint { Color = inkColor, IsAntialias = true };
            using var blob = SKTextBlob.CreateHorizontal(text, font, positions, 0);
            canvas.DrawText(blob, 0, 0, paint);
        }

        var rgba = bitmap.GetPixelSpan();
        var rgb = new byte[width * RenderHeight * 3];
        for (int p = 0, q = 0; q < rgb.Length; p += 4, q += 3)
        {
            rgb[q] = rgba[p];
            rgb[q + 1] = rgba[p + 1];
            rgb[q + 2] = rgba[p + 2];
        }
        if (Chance(0.3)) PixelOps.ContrastBrightness(rgb, 0.75f + 0.35f * rng.NextSingle(), -20 + 40 * rng.NextSingle());
        if (Chance(0.3)) PixelOps.GaussianBlur(rgb, width, RenderHeight, 0.3f + 0.6f * rng.NextSingle());
        if (Chance(0.35)) PixelOps.GaussianNoise(rgb, 2 + 8 * rng.NextSingle(), perChannel: rng.Next(2) == 0, rng);
        return new RenderedWord(rgb, width, RenderHeight, text);
    }

    /// <summary>Paper colour, sometimes a gradient, soft blobs and thin rules near the top or bottom edge. Texture
    /// stays within a third of the ink–paper contrast, on the side away from the ink, so the text stays readable.</summary>
    static void PaintBackground(SKCanvas canvas, int width, SKColor paper, SKColor ink, int contrast, bool inverse, Random rng, bool aug)
    {
        canvas.Clear(paper);
        if (!aug) return;
        int away = inverse ? -1 : 1; // direction of change that moves the paper away from the ink
        if (rng.NextDouble() < 0.3)
        {
            var other = Shifted(paper, away * (int)(contrast * 0.3 * rng.NextDouble()));
            var (from, to) = rng.Next(2) == 0
                ? (new SKPoint(0, 0), new SKPoint(width, RenderHeight * rng.NextSingle()))
                : (new SKPoint(width * rng.NextSingle(), 0), new SKPoint(width * rng.NextSingle(), RenderHeight));
            using var shader = SKShader.CreateLinearGradient(from, to, [paper, other], SKShaderTileMode.Clamp);
            using var gradient = new SKPaint { Shader = shader };
            canvas.DrawRect(0, 0, width, RenderHeight, gradient);
        }
        if (rng.NextDouble() < 0.25)
        {
            using var blob = new SKPaint { IsAntialias = true };
            for (int b = rng.Next(2, 7); b > 0; b--)
            {
                blob.Color = Shifted(paper, away * (int)(contrast * 0.3 * rng.NextDouble())).WithAlpha((byte)rng.Next(30, 120));
                canvas.DrawCircle(width * rng.NextSingle(), RenderHeight * rng.NextSingle(), 3 + 12 * rng.NextSingle(), blob);
            }
        }
        if (rng.NextDouble() < 0.15)
        {
            using var rule = new SKPaint { Color = ink.WithAlpha((byte)rng.Next(60, 160)), StrokeWidth = 1, IsAntialias = true };
            float y = rng.Next(2) == 0 ? 0.5f + 2 * rng.NextSingle() : RenderHeight - 0.5f - 2 * rng.NextSingle();
            canvas.DrawLine(0, y, width, y + (-1 + 2 * rng.NextSingle()), rule);
        }
    }

    /// <summary>A colour of gray level <paramref name="level"/> with a random tint of up to ±amount per channel
    /// (zero mean, so the brightness stays about the level).</summary>
    static SKColor Tinted(int level, int amount, Random rng)
    {
        int r = rng.Next(-amount, amount + 1), g = rng.Next(-amount, amount + 1), b = rng.Next(-amount, amount + 1);
        int mean = (r + g + b) / 3;
        return new SKColor(Clamp(level + r - mean), Clamp(level + g - mean), Clamp(level + b - mean));
    }

    static SKColor Shifted(SKColor c, int delta) => new(Clamp(c.Red + delta), Clamp(c.Green + delta), Clamp(c.Blue + delta));

    static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);

    /// <summary>Sample <paramref name="index"/> preprocessed into <paramref name="chw"/> [3, OutHeight, OutWidth].</summary>
    public (string Text, int[] Label) Sample(long index, Span<float> chw)
    {
        var word = Render(index);
        Preprocess.ResizeNormalize(word.Rgb, word.Width, word.Height, chw, OutHeight, OutWidth, Format.Order);
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

    /// <summary>Nothing to release: typefaces belong to the process-wide <see cref="FontCatalog"/> cache.</summary>
    public void Dispose() { }
}
