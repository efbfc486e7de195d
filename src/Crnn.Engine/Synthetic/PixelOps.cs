using SkiaSharp;

namespace Crnn.Engine.Synthetic;

/// <summary>Per-pixel augmentations on interleaved RGB bytes (RGBA for <see cref="Texture"/>), in plain C#
/// (cheaper than Skia filters at 32 px).</summary>
public static class PixelOps
{
    /// <summary>v ← (v − 128)·contrast + 128 + brightness, clamped.</summary>
    public static void ContrastBrightness(Span<byte> rgb, float contrast, float brightness)
    {
        Span<byte> table = stackalloc byte[256];
        for (int v = 0; v < 256; v++) table[v] = Clamp((v - 128) * contrast + 128 + brightness);
        for (int i = 0; i < rgb.Length; i++) rgb[i] = table[rgb[i]];
    }

    /// <summary>Separable Gaussian blur with clamped edges; radius ⌈2σ⌉ (at most 4).</summary>
    public static void GaussianBlur(Span<byte> rgb, int width, int height, float sigma)
    {
        int radius = Math.Clamp((int)MathF.Ceiling(2 * sigma), 1, 4);
        Span<float> kernel = stackalloc float[2 * radius + 1];
        float sum = 0;
        for (int k = -radius; k <= radius; k++) sum += kernel[k + radius] = MathF.Exp(-k * k / (2 * sigma * sigma));
        for (int k = 0; k < kernel.Length; k++) kernel[k] /= sum;

        var tmp = new float[rgb.Length];
        for (int y = 0; y < height; y++) // horizontal pass → tmp
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                {
                    float acc = 0;
                    for (int k = -radius; k <= radius; k++)
                        acc += kernel[k + radius] * rgb[(y * width + Math.Clamp(x + k, 0, width - 1)) * 3 + c];
                    tmp[(y * width + x) * 3 + c] = acc;
                }
        for (int y = 0; y < height; y++) // vertical pass → rgb
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                {
                    float acc = 0;
                    for (int k = -radius; k <= radius; k++)
                        acc += kernel[k + radius] * tmp[(Math.Clamp(y + k, 0, height - 1) * width + x) * 3 + c];
                    rgb[(y * width + x) * 3 + c] = Clamp(acc);
                }
    }

    /// <summary>Adds zero-mean Gaussian noise of standard deviation sigma, one draw per pixel (gray) or per channel.</summary>
    public static void GaussianNoise(Span<byte> rgb, float sigma, bool perChannel, Random rng)
    {
        int step = perChannel ? 1 : 3;
        for (int i = 0; i < rgb.Length; i += step)
        {
            // Box–Muller
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            float n = sigma * (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            if (perChannel) rgb[i] = Clamp(rgb[i] + n);
            else for (int c = 0; c < 3; c++) rgb[i + c] = Clamp(rgb[i + c] + n);
        }
    }

    /// <summary>Value-noise texture on RGBA pixels: each pixel moves towards <paramref name="tone"/> by
    /// strength × field, the field summing octaves of smoothly interpolated random lattices (cell 3–12 px, halving).</summary>
    public static void Texture(Span<byte> rgba, int width, int height, SKColor tone, float strength, Random rng)
    {
        var field = new float[width * height];
        float cell = 3 + 9 * rng.NextSingle(), amplitude = 1, total = 0;
        for (int octave = rng.Next(2, 4); octave > 0 && cell >= 1; octave--, cell /= 2, amplitude /= 2)
        {
            int gw = (int)(width / cell) + 2, gh = (int)(height / cell) + 2;
            var lattice = new float[gw * gh];
            for (int i = 0; i < lattice.Length; i++) lattice[i] = rng.NextSingle();
            for (int y = 0; y < height; y++)
            {
                float fy = y / cell; int y0 = (int)fy; float ty = Smooth(fy - y0);
                for (int x = 0; x < width; x++)
                {
                    float fx = x / cell; int x0 = (int)fx; float tx = Smooth(fx - x0);
                    float top = Lerp(lattice[y0 * gw + x0], lattice[y0 * gw + x0 + 1], tx);
                    float bottom = Lerp(lattice[(y0 + 1) * gw + x0], lattice[(y0 + 1) * gw + x0 + 1], tx);
                    field[y * width + x] += amplitude * Lerp(top, bottom, ty);
                }
            }
            total += amplitude;
        }
        byte[] toneRgb = [tone.Red, tone.Green, tone.Blue];
        for (int p = 0; p < field.Length; p++)
        {
            float t = strength * field[p] / total;
            for (int c = 0; c < 3; c++) rgba[p * 4 + c] = Clamp(rgba[p * 4 + c] + (toneRgb[c] - rgba[p * 4 + c]) * t);
        }
    }

    /// <summary>Uneven lighting: brightness × a factor ramping from <paramref name="from"/> to <paramref name="to"/>
    /// along the direction <paramref name="angle"/> (radians) across the image.</summary>
    public static void Lighting(Span<byte> rgb, int width, int height, float angle, float from, float to)
    {
        float dx = MathF.Cos(angle), dy = MathF.Sin(angle);
        float min = float.MaxValue, max = float.MinValue;
        foreach (var (x, y) in new[] { (0, 0), (width, 0), (0, height), (width, height) })
        {
            float d = x * dx + y * dy;
            min = Math.Min(min, d);
            max = Math.Max(max, d);
        }
        float span = Math.Max(max - min, 1e-3f);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                float factor = Lerp(from, to, ((x + 0.5f) * dx + (y + 0.5f) * dy - min) / span);
                for (int c = 0, i = (y * width + x) * 3; c < 3; c++) rgb[i + c] = Clamp(rgb[i + c] * factor);
            }
    }

    /// <summary>A shadow over the side of the line through (<paramref name="cx"/>, <paramref name="cy"/>) that
    /// its normal (cos angle, sin angle) points to: brightness × <paramref name="darkness"/>, the edge soft over
    /// ±<paramref name="softness"/> px.</summary>
    public static void CastShadow(Span<byte> rgb, int width, int height, float cx, float cy, float angle, float darkness, float softness)
    {
        float nx = MathF.Cos(angle), ny = MathF.Sin(angle);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                float d = ((x + 0.5f - cx) * nx + (y + 0.5f - cy) * ny) / Math.Max(softness, 1e-3f);
                float t = Smooth(Math.Clamp(0.5f + 0.5f * d, 0, 1));
                float factor = Lerp(1, darkness, t);
                for (int c = 0, i = (y * width + x) * 3; c < 3; c++) rgb[i + c] = Clamp(rgb[i + c] * factor);
            }
    }

    /// <summary>Motion blur: the mean of <paramref name="length"/> pixels along the step (dx, dy), centred, clamped at the edges.</summary>
    public static void MotionBlur(Span<byte> rgb, int width, int height, int dx, int dy, int length)
    {
        var source = rgb.ToArray();
        int first = -(length - 1) / 2;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                {
                    int sum = 0;
                    for (int k = first; k < first + length; k++)
                        sum += source[(Math.Clamp(y + k * dy, 0, height - 1) * width + Math.Clamp(x + k * dx, 0, width - 1)) * 3 + c];
                    rgb[(y * width + x) * 3 + c] = Clamp((float)sum / length);
                }
    }

    /// <summary>The image through a JPEG encoder at <paramref name="quality"/> (1–100) and back: block and ringing artefacts.</summary>
    public static void Jpeg(Span<byte> rgb, int width, int height, int quality)
    {
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var rgba = new byte[width * height * 4];
        for (int p = 0; p < width * height; p++)
        {
            rgba[p * 4] = rgb[p * 3]; rgba[p * 4 + 1] = rgb[p * 3 + 1]; rgba[p * 4 + 2] = rgb[p * 3 + 2]; rgba[p * 4 + 3] = 255;
        }
        using (var image = SKImage.FromPixelCopy(info, rgba))
        using (var data = image.Encode(SKEncodedImageFormat.Jpeg, quality))
        using (var decoded = SKBitmap.Decode(data, info))
        {
            var back = decoded.GetPixelSpan();
            for (int p = 0; p < width * height; p++)
            {
                rgb[p * 3] = back[p * 4]; rgb[p * 3 + 1] = back[p * 4 + 1]; rgb[p * 3 + 2] = back[p * 4 + 2];
            }
        }
    }

    static float Lerp(float a, float b, float t) => a + (b - a) * t;

    static float Smooth(float t) => t * t * (3 - 2 * t);

    static byte Clamp(float v) => (byte)Math.Clamp((int)MathF.Round(v), 0, 255);
}
