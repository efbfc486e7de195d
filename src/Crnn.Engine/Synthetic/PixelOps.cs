namespace Crnn.Engine.Synthetic;

/// <summary>Per-pixel augmentations on interleaved RGB bytes, in plain C# (cheaper than Skia filters at 32 px).</summary>
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

    static byte Clamp(float v) => (byte)Math.Clamp((int)MathF.Round(v), 0, 255);
}
