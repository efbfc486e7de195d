using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing.Processors.Quantization;
using Xunit;

namespace Crnn.Engine.Tests;

public class PreprocessTests : IDisposable
{
    static float Norm(int v) => (v / 255f - 0.5f) / 0.5f;

    [Fact]
    public void UpscaleUsesHalfPixelCentersAndClampsEdges()
    {
        // 2 → 4: src x = (dst + 0.5)/2 − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
        Assert.Equal([0, 25, 75, 100], Preprocess.ResizeBilinear([0, 100], 2, 1, 1, 4, 1));
    }

    [Fact]
    public void DownscaleAveragesNeighbours()
    {
        // 4 → 2: src x = (dst + 0.5)·2 − 0.5 = 0.5, 2.5.
        Assert.Equal([20, 100], Preprocess.ResizeBilinear([0, 40, 80, 120], 4, 1, 1, 2, 1));
    }

    [Fact]
    public void TwoDimensionalUpscaleRoundsToBytes()
    {
        byte[] src = [0, 100, 200, 40]; // 2×2: top row 0 100, bottom row 200 40
        var dst = Preprocess.ResizeBilinear(src, 2, 2, 1, 4, 4);
        Assert.Equal(0, dst[0]);                 // (0,0): both coordinates clamped
        Assert.Equal(59, dst[1 * 4 + 1]);        // fx = fy = 0.25: top 25, bottom 160, 25 + 135/4 = 58.75
        Assert.Equal(76, dst[1 * 4 + 2]);        // fx = 0.75, fy = 0.25: top 75, bottom 80, 76.25
        Assert.Equal(200, dst[3 * 4 + 0]);       // bottom-left corner
        Assert.Equal(40, dst[3 * 4 + 3]);        // bottom-right corner
        Assert.Equal(src, Preprocess.ResizeBilinear(src, 2, 2, 1, 2, 2)); // same size: identity
    }

    [Theory]
    [InlineData(4, 2, 64)]    // ceil(32·2) = 64
    [InlineData(10, 32, 10)]
    [InlineData(33, 32, 33)]
    [InlineData(25, 8, 100)]  // exactly 100
    [InlineData(26, 8, 100)]  // 104 → squeezed to 100
    [InlineData(400, 10, 100)]
    [InlineData(1, 1000, 1)]  // ceil(0.032) = 1
    [InlineData(7, 3, 75)]    // ceil(74.67)
    public void ResizedWidthIsCeilOfAspectCappedAt100(int w, int h, int expected) =>
        Assert.Equal(expected, Preprocess.ResizedWidth(w, h));

    [Fact]
    public void SmallImageIsResizedNormalizedAndPaddedInRgbChwOrder()
    {
        // 4 wide × 2 high; red = column pattern 0 255 0 255, green = 255 − red, blue = 128; both rows equal.
        using var image = new Image<Rgb24>(4, 2);
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 4; x++)
            {
                byte r = (byte)(x % 2 == 0 ? 0 : 255);
                image[x, y] = new Rgb24(r, (byte)(255 - r), 128);
            }
        var chw = Preprocess.ResizeNormalize(image);
        Assert.Equal(3 * 32 * 100, chw.Length);
        float R(int y, int x) => chw[y * 100 + x];
        float G(int y, int x) => chw[3200 + y * 100 + x];
        float B(int y, int x) => chw[6400 + y * 100 + x];
        // resized width 64, src x = (x + 0.5)/16 − 0.5
        Assert.Equal(Norm(0), R(0, 0));     // −0.47 → clamped to column 0
        Assert.Equal(Norm(8), R(5, 8));     // 0.03125 · 255 = 7.97 → 8
        Assert.Equal(Norm(247), R(31, 24)); // 1.03125: 255 · (1 − 0.03125) = 247.03
        Assert.Equal(Norm(255), R(17, 63)); // 3.47 → clamped to column 3
        Assert.Equal(Norm(255 - 8), G(5, 8));
        Assert.Equal(Norm(128), B(9, 40));
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 64; x < 100; x++)
                    Assert.Equal(0f, chw[c * 3200 + y * 100 + x]);
    }

    [Fact]
    public void WideImageIsSqueezedWithoutPaddingAndValuesStayInRange()
    {
        var rng = new Random(3);
        using var image = new Image<Rgb24>(400, 10);
        for (int y = 0; y < 10; y++)
            for (int x = 0; x < 400; x++)
                image[x, y] = new Rgb24((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256));
        // 400 → 100: src x = (x + 0.5)·4 − 0.5, so output column 0 is the mean of columns 1 and 2, column 99
        // of 397 and 398; 10 → 32 rows: output row 0 is clamped to row 0.
        image[1, 0] = image[2, 0] = new Rgb24(0, 255, 0);
        image[397, 0] = new Rgb24(10, 0, 0);
        image[398, 0] = new Rgb24(21, 0, 0);
        var chw = Preprocess.ResizeNormalize(image);
        Assert.All(chw, v => Assert.InRange(v, -1f, 1f));
        Assert.Equal(-1f, chw[0]);
        Assert.Equal(1f, chw[3200]);
        Assert.Equal(Norm(16), chw[99]); // 15.5 rounds up
        // no padding: the last column is image, and random pixels are almost never exactly mid-gray 0
        Assert.Contains(Enumerable.Range(0, 32), y => chw[y * 100 + 99] != 0f);
    }

    [Fact]
    public void LoadsAlphaAndPalettePngsAsRgb()
    {
        string dir = Directory.CreateTempSubdirectory().FullName;
        try
        {
            using var rgba = new Image<Rgba32>(5, 3);
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 5; x++)
                    rgba[x, y] = new Rgba32((byte)(40 * x), (byte)(70 * y), 9, 255);
            string path = Path.Combine(dir, "rgba.png");
            rgba.SaveAsPng(path);
            using var rgb = rgba.CloneAs<Rgb24>();
            Assert.Equal(Preprocess.ResizeNormalize(rgb), Preprocess.LoadFile(path));

            string bmp = Path.Combine(dir, "x.bmp");
            rgba.SaveAsBmp(bmp);
            Assert.Equal(Preprocess.ResizeNormalize(rgb), Preprocess.LoadFile(bmp));

            string junk = Path.Combine(dir, "junk.png");
            File.WriteAllText(junk, "not an image");
            Assert.Contains("junk.png", Assert.Throws<InvalidDataException>(() => Preprocess.LoadFile(junk)).Message);
            Assert.Throws<InvalidDataException>(() => Preprocess.LoadFile(Path.Combine(dir, "missing.png")));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    // ---- Decoding: every format and pixel type ends up as the 8-bit RGB that OpenCV's imread gives. ----
    // The test images are 5 wide and 32 high, so preprocessing resizes nothing (height 32, width ceil(32·5/32) = 5)
    // and the expected output is just the hand-computed 8-bit pixel, normalized, with zero padding after column 5.

    const int W = 5, H = 32;
    readonly string _dir = Directory.CreateTempSubdirectory("crnn-preprocess-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A smooth, asymmetric upright test image (smooth so JPEG stays close).</summary>
    static (byte R, byte G, byte B) Pattern(int x, int y) => ((byte)(10 + 5 * y + 20 * x), (byte)(250 - 6 * y - 3 * x), (byte)(40 + 35 * x + y));

    /// <summary>Four colors in an asymmetric layout, for the palette formats (exact with a fixed palette).</summary>
    static readonly (byte R, byte G, byte B)[] Palette = [(0, 0, 0), (255, 255, 255), (200, 30, 60), (20, 140, 250)];
    static (byte R, byte G, byte B) Blocks(int x, int y) => Palette[(x + y / 8) % 4];

    static float Expected(byte v) => (float)((v / 255.0 - 0.5) / 0.5);

    /// <summary>Asserts the [3, 32, 100] output holds <paramref name="upright"/> (W×H) then zero padding.</summary>
    static void AssertImage(Func<int, int, (byte R, byte G, byte B)> upright, float[] chw, double levels = 0)
    {
        Assert.Equal(3 * 32 * 100, chw.Length);
        double tolerance = 1e-6 + levels / 127.5;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < 100; x++)
            {
                var (r, g, b) = x < W ? upright(x, y) : ((byte)0, (byte)0, (byte)0);
                float[] want = x < W ? [Expected(r), Expected(g), Expected(b)] : [0f, 0f, 0f];
                for (int c = 0; c < 3; c++)
                    Assert.True(Math.Abs(chw[c * 3200 + y * 100 + x] - want[c]) <= tolerance,
                        $"channel {c} at ({x}, {y}): got {chw[c * 3200 + y * 100 + x]}, expected {want[c]} ± {tolerance}");
            }
    }

    static Image<TPixel> Draw<TPixel>(Func<int, int, TPixel> pixel, int width = W, int height = H) where TPixel : unmanaged, IPixel<TPixel>
    {
        var image = new Image<TPixel>(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                image[x, y] = pixel(x, y);
        return image;
    }

    static Rgb24 Rgb((byte R, byte G, byte B) p) => new(p.R, p.G, p.B);
    static L8 Gray(byte v) => new(v);
    /// <summary>A 16-bit channel whose high byte is <paramref name="v"/>; low byte 0xF0 makes rounding (v·257 scaling) differ from the high byte.</summary>
    static ushort Wide(byte v) => (ushort)(v << 8 | 0xF0);

    string Save(Image image, string name, IImageEncoder encoder)
    {
        string path = Path.Combine(_dir, name);
        image.Save(path, encoder);
        return path;
    }

    static QuantizerOptions NoDither => new() { Dither = null };
    static PaletteQuantizer FixedPalette => new(Palette.Select(p => Color.FromRgb(p.R, p.G, p.B)).ToArray(), NoDither);
    static (byte, byte, byte) GrayOf((byte R, byte G, byte B) p) => (p.R, p.R, p.R);

    [Theory]
    [InlineData("png rgb8")]
    [InlineData("png rgba8")]
    [InlineData("png gray8")]
    [InlineData("png gray+alpha8")]
    [InlineData("png palette")]
    [InlineData("png gray16")]
    [InlineData("png gray+alpha16")]
    [InlineData("png rgb16")]
    [InlineData("png rgba16")]
    [InlineData("bmp rgb24")]
    [InlineData("bmp rgba32")]
    [InlineData("bmp palette8")]
    [InlineData("tga rgb24")]
    [InlineData("tga rgba32 rle")]
    [InlineData("tga gray8")]
    [InlineData("webp lossless")]
    [InlineData("gif")]
    [InlineData("jpeg color")]
    [InlineData("jpeg gray")]
    public void DecodesFormatAndPixelTypeToEightBitRgb(string kind)
    {
        Func<int, int, (byte R, byte G, byte B)> upright = Pattern;
        double levels = 0;
        using Image image = kind switch
        {
            "png gray8" or "tga gray8" or "jpeg gray" => Draw((x, y) => Gray(Pattern(x, y).R)),
            "png gray+alpha8" => Draw((x, y) => new La16(Pattern(x, y).R, (byte)(255 - 7 * y))),
            "png rgba8" or "bmp rgba32" or "tga rgba32 rle" or "webp lossless" => Draw((x, y) => new Rgba32(Pattern(x, y).R, Pattern(x, y).G, Pattern(x, y).B, (byte)(255 - 7 * y))),
            "png gray16" => Draw((x, y) => new L16(Wide(Pattern(x, y).R))),
            "png gray+alpha16" => Draw((x, y) => new La32(Wide(Pattern(x, y).R), (ushort)(65535 - 1000 * y))),
            "png rgb16" => Draw((x, y) => new Rgb48(Wide(Pattern(x, y).R), Wide(Pattern(x, y).G), Wide(Pattern(x, y).B))),
            "png rgba16" => Draw((x, y) => new Rgba64(Wide(Pattern(x, y).R), Wide(Pattern(x, y).G), Wide(Pattern(x, y).B), (ushort)(65535 - 1000 * y))),
            "png palette" or "bmp palette8" or "gif" => Draw((x, y) => Rgb(Blocks(x, y))),
            _ => Draw((x, y) => Rgb(Pattern(x, y))),
        };
        if (kind is "png gray8" or "png gray+alpha8" or "png gray16" or "png gray+alpha16" or "tga gray8" or "jpeg gray") upright = (x, y) => GrayOf(Pattern(x, y));
        if (kind is "png palette" or "bmp palette8" or "gif") upright = Blocks;
        IImageEncoder encoder = kind switch
        {
            "png rgb8" => new PngEncoder { ColorType = PngColorType.Rgb },
            "png rgba8" => new PngEncoder { ColorType = PngColorType.RgbWithAlpha },
            "png gray8" => new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 },
            "png gray+alpha8" => new PngEncoder { ColorType = PngColorType.GrayscaleWithAlpha, BitDepth = PngBitDepth.Bit8 },
            "png palette" => new PngEncoder { ColorType = PngColorType.Palette, Quantizer = FixedPalette },
            "png gray16" => new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16 },
            "png gray+alpha16" => new PngEncoder { ColorType = PngColorType.GrayscaleWithAlpha, BitDepth = PngBitDepth.Bit16 },
            "png rgb16" => new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit16 },
            "png rgba16" => new PngEncoder { ColorType = PngColorType.RgbWithAlpha, BitDepth = PngBitDepth.Bit16 },
            "bmp rgb24" => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 },
            "bmp rgba32" => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel32 },
            "bmp palette8" => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel8, Quantizer = FixedPalette },
            "tga rgb24" => new TgaEncoder { BitsPerPixel = TgaBitsPerPixel.Pixel24 },
            "tga rgba32 rle" => new TgaEncoder { BitsPerPixel = TgaBitsPerPixel.Pixel32, Compression = TgaCompression.RunLength },
            "tga gray8" => new TgaEncoder { BitsPerPixel = TgaBitsPerPixel.Pixel8 },
            "webp lossless" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless, Quality = 100 },
            "gif" => new GifEncoder { Quantizer = FixedPalette },
            "jpeg color" => new JpegEncoder { Quality = 100, ColorType = JpegColorType.YCbCrRatio444 },
            "jpeg gray" => new JpegEncoder { Quality = 100, ColorType = JpegColorType.Luminance },
            _ => throw new ArgumentException(kind),
        };
        if (kind.StartsWith("jpeg")) levels = 3; // lossy: a few levels on a smooth image at quality 100
        string path = Save(image, kind.Replace(' ', '_').Replace('+', '_'), encoder);
        AssertImage(upright, Preprocess.LoadFile(path), levels);
    }

    [Fact]
    public void OneBitGrayExpandsToBlackAndWhite()
    {
        using var image = Draw((x, y) => Gray((byte)((x + y) % 3 == 0 ? 255 : 0)));
        string path = Save(image, "gray1.png", new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit1 });
        AssertImage((x, y) => (x + y) % 3 == 0 ? ((byte)255, (byte)255, (byte)255) : ((byte)0, (byte)0, (byte)0), Preprocess.LoadFile(path));
    }

    /// <summary>
    /// The file stores the upright image rotated; the EXIF orientation says how to turn it upright:
    /// 6 = turn the stored image 90° clockwise, 3 = 180°, 8 = 90° counter-clockwise (270° clockwise).
    /// </summary>
    [Theory]
    [InlineData(6, "png")]
    [InlineData(3, "png")]
    [InlineData(8, "png")]
    [InlineData(1, "png")]
    [InlineData(6, "jpeg")]
    [InlineData(8, "webp")]
    public void ExifOrientationIsApplied(ushort orientation, string format)
    {
        // stored(sx, sy) for an upright W×H image: orientation 6 stores H×W with stored(sx, sy) = upright(W−1−sy, sx);
        // 8 stores stored(sx, sy) = upright(sy, H−1−sx); 3 stores W×H upside down.
        Func<int, int, (byte R, byte G, byte B)> stored = orientation switch
        {
            6 => (sx, sy) => Pattern(W - 1 - sy, sx),
            8 => (sx, sy) => Pattern(sy, H - 1 - sx),
            3 => (sx, sy) => Pattern(W - 1 - sx, H - 1 - sy),
            _ => Pattern,
        };
        bool turned = orientation is 6 or 8;
        using var image = Draw((x, y) => Rgb(stored(x, y)), turned ? H : W, turned ? W : H);
        image.Metadata.ExifProfile = new ExifProfile();
        image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        IImageEncoder encoder = format switch
        {
            "png" => new PngEncoder(),
            "jpeg" => new JpegEncoder { Quality = 100, ColorType = JpegColorType.YCbCrRatio444 },
            _ => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
        };
        AssertImage(Pattern, Preprocess.LoadFile(Save(image, $"exif{orientation}.{format}", encoder)), format == "jpeg" ? 3 : 0);
    }

    public static TheoryData<string> CutFormats => ["png", "jpeg", "gif", "webp", "bmp", "tga", "tga-rle"];

    [Theory]
    [MemberData(nameof(CutFormats))]
    public void TruncatedFilesGiveAOneLineErrorNamingThem(string format)
    {
        using var image = Draw((x, y) => Rgb(Pattern(x, y)));
        IImageEncoder encoder = format switch
        {
            "png" => new PngEncoder(),
            "jpeg" => new JpegEncoder(),
            "gif" => new GifEncoder(),
            "webp" => new WebpEncoder(),
            "bmp" => new BmpEncoder(),
            "tga" => new TgaEncoder(),
            _ => new TgaEncoder { Compression = TgaCompression.RunLength },
        };
        byte[] whole = File.ReadAllBytes(Save(image, $"whole.{format}", encoder));
        Preprocess.LoadFile(Path.Combine(_dir, $"whole.{format}")); // the complete file decodes
        foreach (int length in new[] { whole.Length - 1, whole.Length * 3 / 4, whole.Length / 2, 40, 3 })
        {
            string cut = Path.Combine(_dir, $"cut{length}.{format}");
            File.WriteAllBytes(cut, whole[..length]);
            var error = Assert.Throws<InvalidDataException>(() => Preprocess.LoadFile(cut));
            Assert.Contains($"cut{length}.{format}", error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
    }

    [Fact]
    public void EmptyJunkAndMissingFilesGiveAOneLineErrorNamingThem()
    {
        string empty = Path.Combine(_dir, "empty.png"), junk = Path.Combine(_dir, "junk.jpg"), missing = Path.Combine(_dir, "missing.png");
        File.WriteAllBytes(empty, []);
        File.WriteAllText(junk, "not an image at all");
        foreach (var path in new[] { empty, junk, missing })
        {
            var error = Assert.Throws<InvalidDataException>(() => Preprocess.LoadFile(path));
            Assert.Contains(Path.GetFileName(path), error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
        Assert.Contains("empty", Assert.Throws<InvalidDataException>(() => Preprocess.LoadFile(empty)).Message);
    }
}
