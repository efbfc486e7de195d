using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace Crnn.Engine.Tests;

public class PreprocessTests
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
}
