using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Crnn.Engine;

/// <summary>
/// PaddleOCR's resize_norm_img: resize to the model height keeping the aspect ratio (width capped, so wide
/// images are squeezed), bilinear as cv2.resize INTER_LINEAR, scale to [−1, 1], right-pad with 0.
/// Output is CHW float32 in RGB order. (PaddleOCR feeds BGR from cv2.imread; weights trained here use RGB.)
/// </summary>
public static class Preprocess
{
    public const int Channels = 3;

    /// <summary>Resized width: min(maxWidth, ceil(height·w/h)), computed as PaddleOCR does (ratio first).</summary>
    public static int ResizedWidth(int width, int height, int targetHeight = 32, int maxWidth = 100)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"image size {width}×{height} is empty");
        double ratio = width / (double)height;
        double resized = Math.Ceiling(targetHeight * ratio);
        return resized > maxWidth ? maxWidth : (int)resized;
    }

    /// <summary>
    /// Bilinear resize of interleaved 8-bit pixels with OpenCV's INTER_LINEAR geometry: half-pixel centers,
    /// src = (dst + 0.5)·(srcSize/dstSize) − 0.5, clamped to the edge pixels; the result is rounded to 8 bits
    /// as cv2.resize does for uint8 images. (OpenCV weights in 11-bit fixed point, so it can differ by one
    /// level where a value sits near .5; here the weights are float.)
    /// </summary>
    public static byte[] ResizeBilinear(ReadOnlySpan<byte> src, int srcWidth, int srcHeight, int channels, int dstWidth, int dstHeight)
    {
        if (src.Length != srcWidth * srcHeight * channels)
            throw new ArgumentException($"{src.Length} bytes do not hold a {srcWidth}×{srcHeight}×{channels} image");
        var (x0, x1, ax) = Taps(srcWidth, dstWidth);
        var (y0, y1, ay) = Taps(srcHeight, dstHeight);
        var dst = new byte[dstWidth * dstHeight * channels];
        int srcStride = srcWidth * channels;
        for (int y = 0; y < dstHeight; y++)
        {
            var top = src.Slice(y0[y] * srcStride, srcStride);
            var bottom = src.Slice(y1[y] * srcStride, srcStride);
            float wy = ay[y];
            for (int x = 0; x < dstWidth; x++)
            {
                int left = x0[x] * channels, right = x1[x] * channels, o = (y * dstWidth + x) * channels;
                float wx = ax[x];
                for (int c = 0; c < channels; c++)
                {
                    float t = top[left + c] + (top[right + c] - top[left + c]) * wx;
                    float b = bottom[left + c] + (bottom[right + c] - bottom[left + c]) * wx;
                    float v = t + (b - t) * wy;
                    dst[o + c] = (byte)Math.Min(255, (int)(v + 0.5f));
                }
            }
        }
        return dst;
    }

    /// <summary>For each destination index, the two source indices and the weight of the second (OpenCV's
    /// computation: fx in float from a double scale, floor, clamp at both edges with weight 0).</summary>
    static (int[] I0, int[] I1, float[] W) Taps(int srcSize, int dstSize)
    {
        double scale = 1.0 / ((double)dstSize / srcSize);
        var i0 = new int[dstSize];
        var i1 = new int[dstSize];
        var w = new float[dstSize];
        for (int d = 0; d < dstSize; d++)
        {
            float f = (float)((d + 0.5) * scale - 0.5);
            int s = (int)MathF.Floor(f);
            f -= s;
            if (s < 0) { s = 0; f = 0; }
            if (s >= srcSize - 1) { s = srcSize - 1; f = 0; }
            i0[d] = s;
            i1[d] = Math.Min(s + 1, srcSize - 1);
            w[d] = f;
        }
        return (i0, i1, w);
    }

    /// <summary>Interleaved RGB bytes (width×height×3) → CHW floats [3, outHeight, outWidth] in [−1, 1], zero-padded;
    /// with <see cref="ChannelOrder.Bgr"/> the planes are B, G, R (what PaddleOCR's weights read from cv2.imread).</summary>
    public static void ResizeNormalize(ReadOnlySpan<byte> rgb, int width, int height, Span<float> chw, int outHeight = 32, int outWidth = 100,
        ChannelOrder order = ChannelOrder.Rgb)
    {
        int plane = outHeight * outWidth;
        if (chw.Length != Channels * plane)
            throw new ArgumentException($"output holds {chw.Length} floats, expected 3×{outHeight}×{outWidth} = {Channels * plane}");
        int resizedWidth = ResizedWidth(width, height, outHeight, outWidth);
        var resized = ResizeBilinear(rgb, width, height, Channels, resizedWidth, outHeight);
        chw.Clear(); // the right padding is 0, i.e. mid-gray after normalization
        for (int y = 0; y < outHeight; y++)
            for (int x = 0; x < resizedWidth; x++)
                for (int c = 0; c < Channels; c++)
                {
                    int target = order == ChannelOrder.Bgr ? Channels - 1 - c : c;
                    chw[target * plane + y * outWidth + x] = (resized[(y * resizedWidth + x) * Channels + c] / 255f - 0.5f) / 0.5f;
                }
    }

    /// <summary>An ImageSharp image → CHW floats [3, outHeight, outWidth] (see <see cref="ResizeNormalize(ReadOnlySpan{byte}, int, int, Span{float}, int, int)"/>).</summary>
    public static void ResizeNormalize(Image<Rgb24> image, Span<float> chw, int outHeight = 32, int outWidth = 100, ChannelOrder order = ChannelOrder.Rgb)
    {
        var rgb = new byte[image.Width * image.Height * Channels];
        image.CopyPixelDataTo(rgb);
        ResizeNormalize(rgb, image.Width, image.Height, chw, outHeight, outWidth, order);
    }

    public static float[] ResizeNormalize(Image<Rgb24> image, int outHeight = 32, int outWidth = 100)
    {
        var chw = new float[Channels * outHeight * outWidth];
        ResizeNormalize(image, chw, outHeight, outWidth);
        return chw;
    }

    /// <summary>Decodes an image file and preprocesses it (see <see cref="LoadRgb"/>).</summary>
    public static float[] LoadFile(string path, int outHeight = 32, int outWidth = 100)
    {
        using var image = LoadRgb(path);
        return ResizeNormalize(image, outHeight, outWidth);
    }

    /// <summary>Several image files preprocessed into one [N, 3, outHeight, outWidth] batch array.</summary>
    public static float[] LoadFiles(IReadOnlyList<string> paths, int outHeight = 32, int outWidth = 100)
    {
        int size = Channels * outHeight * outWidth;
        var images = new float[paths.Count * size];
        for (int i = 0; i < paths.Count; i++) LoadFile(paths[i], outHeight, outWidth).CopyTo(images.AsSpan(i * size, size));
        return images;
    }

    /// <summary>
    /// Decodes PNG, JPEG, BMP, GIF, WebP, TGA (also TIFF, PBM) to 8-bit RGB as OpenCV's imread(IMREAD_COLOR)
    /// does: EXIF orientation applied, alpha dropped (not blended), gray replicated, palettes expanded, 16-bit
    /// channels cut to their high byte (libpng's strip_16). A missing, empty, truncated or undecodable file
    /// gives a one-line <see cref="InvalidDataException"/> naming it.
    /// </summary>
    public static Image<Rgb24> LoadRgb(string path)
    {
        byte[] file;
        try { file = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw Unreadable(path, e.Message, e); }
        return DecodeRgb(file, path);
    }

    /// <summary>As <see cref="LoadRgb"/>, for an encoded image already in memory (e.g. an LMDB value);
    /// <paramref name="path"/> names it in errors.</summary>
    public static Image<Rgb24> DecodeRgb(ReadOnlySpan<byte> file, string path)
    {
        if (file.Length == 0) throw Unreadable(path, "the file is empty");
        var format = Image.DetectFormat(file)
            ?? throw Unreadable(path, "not an image in a supported format (PNG, JPEG, BMP, GIF, WebP, TGA, TIFF, PBM)");
        if (TruncatedImage.Problem(file, format) is { } problem) throw Unreadable(path, $"truncated or damaged: {problem}");
        Image image;
        try { image = Image.Load(file); }
        catch (Exception e) when (e is ImageFormatException or NotSupportedException or ArgumentException or IndexOutOfRangeException or IOException)
        {
            throw Unreadable(path, e.Message, e); // e.g. TGA and WebP decoders report short data as ArgumentException
        }
        image.Mutate(x => x.AutoOrient());
        if (image is Image<Rgb24> rgb) return rgb;
        using (image) return ToRgb24(image);
    }

    static InvalidDataException Unreadable(string path, string reason, Exception? inner = null) =>
        new($"cannot read image '{path}': {reason.Split('\n')[0].Trim()}", inner);

    /// <summary>16-bit images keep the high byte of each channel (OpenCV); 8-bit ones convert exactly.</summary>
    static Image<Rgb24> ToRgb24(Image image) => image switch
    {
        Image<L16> gray => Convert(gray, p => Gray((byte)(p.PackedValue >> 8))),
        Image<La32> gray => Convert(gray, p => Gray((byte)(p.L >> 8))),
        Image<Rgb48> color => Convert(color, p => new Rgb24((byte)(p.R >> 8), (byte)(p.G >> 8), (byte)(p.B >> 8))),
        Image<Rgba64> color => Convert(color, p => new Rgb24((byte)(p.R >> 8), (byte)(p.G >> 8), (byte)(p.B >> 8))),
        _ => image.CloneAs<Rgb24>(),
    };

    static Rgb24 Gray(byte v) => new(v, v, v);

    static Image<Rgb24> Convert<TPixel>(Image<TPixel> image, Func<TPixel, Rgb24> pixel) where TPixel : unmanaged, IPixel<TPixel>
    {
        var source = new TPixel[image.Width * image.Height];
        image.CopyPixelDataTo(source);
        var rgb = new Rgb24[source.Length];
        for (int i = 0; i < source.Length; i++) rgb[i] = pixel(source[i]);
        return Image.LoadPixelData<Rgb24>(rgb, image.Width, image.Height);
    }
}
