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
/// Synthetic text-line images made to look like word crops of photographs: words and random strings
/// (<see cref="TextSampler"/>) rendered with SkiaSharp in every usable installed font (<see cref="FontCatalog"/>),
/// then put through the effects of <see cref="SyntheticEffects"/> — colours and procedural backgrounds, outlines and
/// shadows, rotation, shear, perspective and curved baselines, tight, loose and cut crops, low resolution, uneven
/// light, blur, noise and JPEG. Sample i is a pure function of (seed, i) — every random choice comes from generators
/// seeded from both — so a stream resumes exactly from <see cref="Position"/> and a batch renders in parallel without
/// changing a pixel.
/// </summary>
public sealed class SyntheticWords : IDisposable
{
    public const int MinLength = 1;
    /// <summary>Longest text: the model's 25 CTC time steps.</summary>
    public const int MaxLength = 25;
    const int RenderHeight = 32;
    const float NominalSize = 28; // layout is computed at this font size, then the canvas scales it to the crop

    readonly CharDictionary _dictionary;
    readonly FontCatalog _fonts;
    readonly TextSampler _texts;
    readonly SyntheticEffects _effects;
    readonly string[] _visible;
    readonly HashSet<char> _caseless; // lower-case letters whose upper case the dictionary lacks

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
        _effects = Options.ActiveEffects;
        _dictionary = dictionary;
        Seed = seed;
        Format = format ?? Data.ImageFormat.Seed;
        _texts = new TextSampler(dictionary, Options.WordRatio, steps: MaxLength);
        _fonts = FontCatalog.For(dictionary, Options);
        _visible = [.. dictionary.Symbols.Where(s => !string.IsNullOrWhiteSpace(s))];
        var symbols = dictionary.Symbols.ToHashSet();
        _caseless = [.. dictionary.Symbols.Where(s => s.Length == 1 && char.IsLower(s[0]) && !symbols.Contains(char.ToUpperInvariant(s[0]).ToString()))
            .Select(s => s[0])];
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

    /// <summary>The text, the font and the seed of the effects of one sample.</summary>
    sealed record Plan(string Text, FontFace Font, int EffectSeed);

    Plan Draw(long index)
    {
        int seed = SampleSeed(Seed, index);
        var rng = new Random(seed);
        string text = _texts.Next(rng);
        var family = _fonts.Families[rng.Next(_fonts.Families.Count)];
        var font = family[rng.Next(family.Count)];
        return new Plan(text, font, seed);
    }

    /// <summary>Each effect's own generator, seeded from (sample, effect): one effect switched on or off does not
    /// move the draws of any other.</summary>
    enum Fx { Case = 1, Colors, Inverse, Colorful, Gradient, Texture, Blobs, Lines, Stretch, Bold, Spacing, Outline, Shadow,
        Rotation, Shear, Perspective, Curve, Neighbours, NeighbourCut, TightCrop, LooseCrop, Padding, LowResolution, Lighting, CastShadow,
        Defocus, MotionBlur, Contrast, Noise, Jpeg }

    sealed class Dice(int seed)
    {
        public Random Of(Fx fx) => new(SampleSeed(seed, 1L << 40 | (long)fx));

        /// <summary>The effect's generator when it fires (probability p), else null.</summary>
        public Random? When(Fx fx, double p)
        {
            var rng = Of(fx);
            return rng.NextDouble() < p ? rng : null;
        }
    }

    /// <summary>Renders sample <paramref name="index"/> at height 32, as wide as its text.</summary>
    public RenderedWord Render(long index)
    {
        var plan = Draw(index);
        var fx = _effects;
        var dice = new Dice(plan.EffectSeed);
        bool plain = !Options.Augment;
        string shown = Shown(plan.Text, dice, fx);

        // Colours: ink and paper at least 80 luma levels apart (120 for plain samples).
        var colors = dice.Of(Fx.Colors);
        bool inverse = dice.When(Fx.Inverse, fx.Inverse) is not null;
        int tint = plain ? 12 : dice.When(Fx.Colorful, fx.Colorful) is not null ? 90 : 35;
        int paper = inverse ? colors.Next(0, 100) : plain ? colors.Next(190, 256) : colors.Next(140, 256);
        int gap = plain ? 120 : colors.Next(80, 130);
        int ink = inverse ? colors.Next(Math.Min(paper + gap, 255), 256) : colors.Next(0, Math.Max(paper - gap, 0) + 1);
        var paperColor = Tinted(paper, tint, colors);
        var inkColor = Tinted(ink, tint, colors);
        int contrast = Math.Abs(paper - ink);

        var layout = Layout(shown, plan.Font, dice, fx);
        try
        {
            var crop = Crop(layout, dice, fx, plain);
            int height = dice.When(Fx.LowResolution, fx.LowResolution) is { } low ? low.Next(10, 21) : RenderHeight;
            float scale = height / crop.Height;
            int width = Math.Clamp((int)MathF.Ceiling(crop.Width * scale), 1, 40 * RenderHeight);
            var toCanvas = SKMatrix.Concat(SKMatrix.CreateScale(scale, scale), SKMatrix.CreateTranslation(-crop.Left, -crop.Top));
            layout.Text.Transform(toCanvas);
            layout.Context.Transform(toCanvas);

            var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
            using var bitmap = new SKBitmap(info);
            using (var canvas = new SKCanvas(bitmap))
            {
                PaintBackground(canvas, bitmap, paperColor, inkColor, contrast, inverse, dice, fx);
                DrawText(canvas, layout, inkColor, inverse, height / (float)RenderHeight, scale, dice, fx);
            }
            var rgba = bitmap.GetPixelSpan();
            var rgb = new byte[width * height * 3];
            for (int p = 0, q = 0; q < rgb.Length; p += 4, q += 3)
            {
                rgb[q] = rgba[p];
                rgb[q + 1] = rgba[p + 1];
                rgb[q + 2] = rgba[p + 2];
            }
            Camera(rgb, width, height, dice, fx);
            if (height != RenderHeight)
            {
                int upWidth = Math.Max(1, (int)MathF.Round(width * (float)RenderHeight / height));
                rgb = Preprocess.ResizeBilinear(rgb, width, height, 3, upWidth, RenderHeight);
                width = upWidth;
            }
            return new RenderedWord(rgb, width, RenderHeight, plan.Text);
        }
        finally { layout.Dispose(); }
    }

    /// <summary>The text as drawn: for a dictionary without upper-case letters the word may be drawn UPPER or
    /// Capitalized (its label stays lower case, as the benchmarks score it).</summary>
    string Shown(string text, Dice dice, SyntheticEffects fx)
    {
        if (_caseless.Count == 0) return text;
        var rng = dice.Of(Fx.Case);
        double u = rng.NextDouble();
        int upTo = u < fx.UpperCase ? text.Length : u < fx.UpperCase + fx.Capitalized ? 1 : 0;
        var chars = text.ToCharArray();
        for (int i = 0; i < upTo; i++)
            if (_caseless.Contains(chars[i])) chars[i] = char.ToUpperInvariant(chars[i]);
        return new string(chars);
    }

    /// <summary>The glyph outlines in layout units after the word's geometry: the text, the neighbouring letters
    /// (may be empty) and the reference box (cap height to baseline at least, so short lower-case words keep
    /// their scale).</summary>
    sealed record TextLayout(SKPath Text, SKPath Context, SKRect Reference, SKRect LeftNeighbour, SKRect RightNeighbour) : IDisposable
    {
        public void Dispose()
        {
            Text.Dispose();
            Context.Dispose();
        }
    }

    TextLayout Layout(string shown, FontFace face, Dice dice, SyntheticEffects fx)
    {
        using var font = new SKFont(face.Typeface, NominalSize) { Edging = SKFontEdging.Antialias, Subpixel = true };
        if (dice.When(Fx.Stretch, fx.Stretch) is { } stretch) font.ScaleX = 0.7f + 0.6f * stretch.NextSingle();
        float spacing = dice.When(Fx.Spacing, fx.Spacing) is { } sp ? NominalSize * (-0.04f + 0.3f * sp.NextSingle()) : 0;

        // Neighbours: a letter either side, right after the word (cut from inside a word) or a space away.
        string leftText = "", rightText = "";
        float neighbourGap = spacing;
        if (dice.When(Fx.Neighbours, fx.Neighbours) is { } nb)
        {
            leftText = _visible[nb.Next(_visible.Length)];
            rightText = _visible[nb.Next(_visible.Length)];
            if (nb.Next(2) == 0) neighbourGap += NominalSize * (0.2f + 0.2f * nb.NextSingle());
        }
        ushort[] leftGlyphs = font.GetGlyphs(leftText), textGlyphs = font.GetGlyphs(shown), rightGlyphs = font.GetGlyphs(rightText);
        ushort[] glyphs = [.. leftGlyphs, .. textGlyphs, .. rightGlyphs];
        float[] widths = font.GetGlyphWidths(glyphs);
        var x = new float[glyphs.Length];
        float pen = 0;
        for (int g = 0; g < glyphs.Length; g++)
        {
            bool boundary = g == leftGlyphs.Length || g == leftGlyphs.Length + textGlyphs.Length;
            if (g > 0) pen += boundary && leftText.Length > 0 ? neighbourGap : spacing;
            x[g] = pen;
            pen += widths[g];
        }

        // Baseline: straight, or an arc sagging up or down by 0.15–0.6 em at the ends, glyphs turned along it.
        float mid = pen / 2, sag = 0;
        if (dice.When(Fx.Curve, fx.Curve) is { } curve)
            sag = (curve.Next(2) == 0 ? 1 : -1) * NominalSize * (0.15f + 0.45f * curve.NextSingle()) / Math.Max(mid * mid, 1);
        float capHeight = CapHeight(font);
        using var textBuilder = new SKPathBuilder();
        using var leftBuilder = new SKPathBuilder();
        using var rightBuilder = new SKPathBuilder();
        var reference = new List<SKPoint>();
        for (int g = 0; g < glyphs.Length; g++)
        {
            float centre = x[g] + widths[g] / 2, dx = centre - mid;
            var place = SKMatrix.Concat(SKMatrix.CreateTranslation(centre, sag * dx * dx),
                SKMatrix.Concat(SKMatrix.CreateRotation(MathF.Atan(2 * sag * dx)), SKMatrix.CreateTranslation(-widths[g] / 2, 0)));
            using var glyph = font.GetGlyphPath(glyphs[g]);
            if (glyph is null) continue;
            bool isLeft = g < leftGlyphs.Length, isRight = g >= leftGlyphs.Length + textGlyphs.Length;
            (isLeft ? leftBuilder : isRight ? rightBuilder : textBuilder).AddPath(glyph, in place, SKPathAddMode.Append);
            if (!isLeft && !isRight)
                reference.AddRange(place.MapPoints([new SKPoint(0, 0), new SKPoint(widths[g], 0), new SKPoint(0, -capHeight), new SKPoint(widths[g], -capHeight)]));
        }
        if (reference.Count == 0) reference.Add(new SKPoint(0, 0));

        // The word's geometry about its centre: rotation, shear, perspective.
        var whole = new SKRect(0, -capHeight, Math.Max(pen, 1), 0);
        var geometry = SKMatrix.CreateTranslation(-whole.MidX, -whole.MidY);
        if (dice.When(Fx.Rotation, fx.Rotation) is { } rot)
            geometry = SKMatrix.Concat(SKMatrix.CreateRotationDegrees(-5 + 10 * rot.NextSingle()), geometry);
        if (dice.When(Fx.Shear, fx.Shear) is { } shear)
            geometry = SKMatrix.Concat(SKMatrix.CreateSkew(-0.3f + 0.6f * shear.NextSingle(), 0), geometry);
        if (dice.When(Fx.Perspective, fx.Perspective) is { } persp)
        {
            // w = 1 + p·x/half stays within [0.82, 1.18] over the line: the near end up to 1.45 × the far one.
            float p = (persp.Next(2) == 0 ? 1 : -1) * (0.05f + 0.13f * persp.NextSingle());
            var m = SKMatrix.Identity;
            if (persp.Next(3) > 0) m.Persp0 = p / Math.Max(whole.Width / 2, 1);
            else m.Persp1 = p / Math.Max(capHeight / 2, 1);
            geometry = SKMatrix.Concat(m, geometry);
        }
        var text = textBuilder.Detach();
        using var left = leftBuilder.Detach();
        using var right = rightBuilder.Detach();
        foreach (var path in new[] { text, left, right }) path.Transform(geometry);
        var mapped = geometry.MapPoints([.. reference]);
        var box = text.TightBounds;
        box.Union(new SKRect(mapped.Min(p => p.X), mapped.Min(p => p.Y), mapped.Max(p => p.X), mapped.Max(p => p.Y)));
        using var contextBuilder = new SKPathBuilder();
        contextBuilder.AddPath(left, SKPathAddMode.Append);
        contextBuilder.AddPath(right, SKPathAddMode.Append);
        return new TextLayout(text, contextBuilder.Detach(), box, left.TightBounds, right.TightBounds);
    }

    /// <summary>The height of 'H' as drawn (some fonts' cap-height metric is far off), else the metric.</summary>
    static float CapHeight(SKFont font)
    {
        if (font.GetGlyphs("H")[0] != 0)
        {
            font.MeasureText("H", out var bounds);
            if (bounds.Height > 0) return -bounds.Top;
        }
        return font.Metrics.CapHeight > 0 ? font.Metrics.CapHeight : -font.Metrics.Ascent * 0.7f;
    }

    /// <summary>The crop around the word in layout units: padding jitter, or tight, loose, or cut into the
    /// neighbouring letters.</summary>
    static SKRect Crop(TextLayout layout, Dice dice, SyntheticEffects fx, bool plain)
    {
        var box = layout.Reference;
        float h = Math.Max(box.Height, 1);
        var pad = dice.Of(Fx.Padding);
        float Range(float lo, float hi) => h * (lo + (hi - lo) * pad.NextSingle());
        float l, r, t, b;
        if (plain) { l = Range(0.05f, 0.25f); r = Range(0.05f, 0.25f); t = Range(0.1f, 0.25f); b = Range(0.1f, 0.25f); }
        else { l = Range(0.02f, 0.45f); r = Range(0.02f, 0.45f); t = Range(0.04f, 0.35f); b = Range(0.04f, 0.35f); }
        if (dice.When(Fx.TightCrop, fx.TightCrop) is { } tight)
        {
            float Shave(float lo, float hi) => h * (lo + (hi - lo) * tight.NextSingle());
            l = Shave(-0.03f, 0.04f); r = Shave(-0.03f, 0.04f); t = Shave(-0.08f, 0.03f); b = Shave(-0.08f, 0.03f);
        }
        else if (dice.When(Fx.LooseCrop, fx.LooseCrop) is { } loose)
        {
            float Wide(float lo, float hi) => h * (lo + (hi - lo) * loose.NextSingle());
            l = Wide(0.3f, 1.2f); r = Wide(0.3f, 1.2f); t = Wide(0.2f, 0.6f); b = Wide(0.2f, 0.6f);
        }
        if (!layout.LeftNeighbour.IsEmpty && dice.Of(Fx.NeighbourCut) is { } cut)
        {
            // 10–45 % of each neighbouring glyph shows at the edge
            l = Math.Max(box.Left - (layout.LeftNeighbour.Right - (0.1f + 0.35f * cut.NextSingle()) * layout.LeftNeighbour.Width), 0.02f * h);
            r = Math.Max(layout.RightNeighbour.Left + (0.1f + 0.35f * cut.NextSingle()) * layout.RightNeighbour.Width - box.Right, 0.02f * h);
        }
        var crop = new SKRect(box.Left - l, box.Top - t, box.Right + r, box.Bottom + b);
        if (crop.Width < 1) crop.Right = crop.Left + 1;
        if (crop.Height < 1) crop.Bottom = crop.Top + 1;
        return crop;
    }

    /// <summary>Paper, then a gradient, a value-noise texture, blobs and lines. Texture stays within about half
    /// the ink–paper contrast, on the side away from the ink, so the text stays readable.</summary>
    static void PaintBackground(SKCanvas canvas, SKBitmap bitmap, SKColor paper, SKColor ink, int contrast, bool inverse, Dice dice, SyntheticEffects fx)
    {
        int width = bitmap.Width, height = bitmap.Height;
        int away = inverse ? -1 : 1; // direction of change that moves the paper away from the ink
        canvas.Clear(paper);
        if (dice.When(Fx.Gradient, fx.Gradient) is { } g)
        {
            var other = Shifted(paper, away * (int)(contrast * 0.35 * g.NextDouble()));
            var (from, to) = g.Next(2) == 0
                ? (new SKPoint(0, 0), new SKPoint(width, height * g.NextSingle()))
                : (new SKPoint(width * g.NextSingle(), 0), new SKPoint(width * g.NextSingle(), height));
            using var shader = SKShader.CreateLinearGradient(from, to, [paper, other], SKShaderTileMode.Clamp);
            using var gradient = new SKPaint { Shader = shader };
            canvas.DrawRect(0, 0, width, height, gradient);
        }
        if (dice.When(Fx.Texture, fx.Texture) is { } t)
        {
            canvas.Flush();
            var tone = Tinted(Math.Clamp(Luma(paper) + away * (int)(contrast * (0.2 + 0.3 * t.NextDouble())), 0, 255), 50, t);
            PixelOps.Texture(bitmap.GetPixelSpan(), width, height, tone, 0.3f + 0.6f * t.NextSingle(), t);
            bitmap.NotifyPixelsChanged();
        }
        if (dice.When(Fx.Blobs, fx.Blobs) is { } bl)
        {
            using var blob = new SKPaint { IsAntialias = true };
            for (int n = bl.Next(2, 7); n > 0; n--)
            {
                blob.Color = Shifted(paper, away * (int)(contrast * 0.3 * bl.NextDouble())).WithAlpha((byte)bl.Next(30, 120));
                canvas.DrawCircle(width * bl.NextSingle(), height * bl.NextSingle(), (3 + 12 * bl.NextSingle()) * height / RenderHeight, blob);
            }
        }
        if (dice.When(Fx.Lines, fx.Lines) is { } li)
        {
            using var line = new SKPaint { Color = ink.WithAlpha((byte)li.Next(60, 160)), StrokeWidth = 1 + li.Next(2), IsAntialias = true, Style = SKPaintStyle.Stroke };
            float inset = 0.5f + 2 * li.NextSingle();
            if (li.Next(3) == 0) canvas.DrawRect(inset, inset, width - 2 * inset, height - 2 * inset, line); // a sign's frame
            else
            {
                float y = li.Next(2) == 0 ? inset : height - inset;
                canvas.DrawLine(0, y, width, y + (-1 + 2 * li.NextSingle()), line);
            }
        }
    }

    /// <summary>The word and its neighbours: a soft drop shadow, an outline of a contrasting colour, then the ink
    /// (bold draws the fill stroked as well). Sizes are in pixels of a 32 px crop, times <paramref name="pixel"/>.</summary>
    static void DrawText(SKCanvas canvas, TextLayout layout, SKColor ink, bool inverse, float pixel, float scale, Dice dice, SyntheticEffects fx)
    {
        void Draw(SKPaint paint)
        {
            canvas.DrawPath(layout.Text, paint);
            canvas.DrawPath(layout.Context, paint);
        }
        if (dice.When(Fx.Shadow, fx.Shadow) is { } sh)
        {
            float sigma = pixel * (0.3f + 1.2f * sh.NextSingle());
            using var blur = SKMaskFilter.CreateBlur(SKBlurStyle.Normal, sigma);
            var shadow = inverse ? new SKColor(0, 0, 0) : Shifted(ink, -40);
            using var paint = new SKPaint { Color = shadow.WithAlpha((byte)sh.Next(90, 220)), IsAntialias = true, MaskFilter = blur };
            canvas.Save();
            canvas.Translate(pixel * (-2.5f + 5 * sh.NextSingle()), pixel * (0.5f + 2 * sh.NextSingle()));
            Draw(paint);
            canvas.Restore();
        }
        if (dice.When(Fx.Outline, fx.Outline) is { } ol)
        {
            int level = Luma(ink) < 128 ? ol.Next(170, 256) : ol.Next(0, 90);
            using var paint = new SKPaint
            {
                Color = Tinted(level, 80, ol), IsAntialias = true, Style = SKPaintStyle.Stroke,
                StrokeWidth = pixel * (1 + 2.5f * ol.NextSingle()), StrokeJoin = SKStrokeJoin.Round,
            };
            Draw(paint);
        }
        using var fill = new SKPaint { Color = ink, IsAntialias = true };
        if (dice.When(Fx.Bold, fx.Bold) is { } bold)
        {
            fill.Style = SKPaintStyle.StrokeAndFill;
            fill.StrokeWidth = scale * NominalSize * (0.03f + 0.04f * bold.NextSingle());
            fill.StrokeJoin = SKStrokeJoin.Round;
        }
        Draw(fill);
    }

    /// <summary>What a camera adds: uneven light, a cast shadow, defocus or motion blur, contrast, sensor noise, JPEG.
    /// One kind of blur at most — low resolution, defocus or motion — since stacked they leave nothing to read.</summary>
    static void Camera(byte[] rgb, int width, int height, Dice dice, SyntheticEffects fx)
    {
        bool blurred = height != RenderHeight; // rendered at low resolution
        float pixel = height / (float)RenderHeight;
        if (dice.When(Fx.Lighting, fx.Lighting) is { } li)
            PixelOps.Lighting(rgb, width, height, 2 * MathF.PI * li.NextSingle(), 0.7f + 0.25f * li.NextSingle(), 1 + 0.25f * li.NextSingle());
        if (dice.When(Fx.CastShadow, fx.CastShadow) is { } cs)
            PixelOps.CastShadow(rgb, width, height, width * cs.NextSingle(), height * cs.NextSingle(), 2 * MathF.PI * cs.NextSingle(),
                0.55f + 0.3f * cs.NextSingle(), pixel * (0.5f + 4 * cs.NextSingle()));
        if (dice.When(Fx.Defocus, fx.Defocus) is { } df && !blurred)
        {
            PixelOps.GaussianBlur(rgb, width, height, 0.4f + 0.8f * df.NextSingle());
            blurred = true;
        }
        if (dice.When(Fx.MotionBlur, fx.MotionBlur) is { } mb && !blurred)
        {
            (int dx, int dy) = mb.Next(6) switch { < 3 => (1, 0), 3 => (0, 1), 4 => (1, 1), _ => (1, -1) }; // mostly a pan
            PixelOps.MotionBlur(rgb, width, height, dx, dy, mb.Next(2, 5));
        }
        if (dice.When(Fx.Contrast, fx.Contrast) is { } ct)
            PixelOps.ContrastBrightness(rgb, 0.7f + 0.4f * ct.NextSingle(), -25 + 50 * ct.NextSingle());
        if (dice.When(Fx.Noise, fx.Noise) is { } no)
            PixelOps.GaussianNoise(rgb, 2 + 10 * no.NextSingle(), perChannel: no.Next(2) == 0, no);
        if (dice.When(Fx.Jpeg, fx.Jpeg) is { } jp)
            PixelOps.Jpeg(rgb, width, height, jp.Next(10, 71));
    }

    /// <summary>A colour of luma <paramref name="level"/> with a random tint of up to ±amount per channel (the
    /// tint has zero luma, so ink and paper keep their contrast as the eye sees it, up to clamping).</summary>
    static SKColor Tinted(int level, int amount, Random rng)
    {
        int r = rng.Next(-amount, amount + 1), g = rng.Next(-amount, amount + 1), b = rng.Next(-amount, amount + 1);
        int luma = (299 * r + 587 * g + 114 * b) / 1000;
        return new SKColor(Clamp(level + r - luma), Clamp(level + g - luma), Clamp(level + b - luma));
    }

    static int Luma(SKColor c) => (299 * c.Red + 587 * c.Green + 114 * c.Blue) / 1000;

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
