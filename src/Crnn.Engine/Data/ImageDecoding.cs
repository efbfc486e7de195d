using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Crnn.Engine.Data;

/// <summary>How an image becomes one network input: PaddleOCR's resize-normalize to <see cref="Height"/> ×
/// <see cref="Width"/> (the aspect ratio kept, wider images squeezed, zero right-padding) in channel order
/// <see cref="Order"/>. The seed model's is 32 × 100 RGB; a model's own is <see cref="ModelConfig.Input"/>.</summary>
public sealed record ImageFormat(int Height = 32, int Width = 100, ChannelOrder Order = ChannelOrder.Rgb)
{
    public static ImageFormat Seed { get; } = new();

    /// <summary>Floats per image: 3 × Height × Width.</summary>
    public int Size => Preprocess.Channels * Height * Width;

    public void Write(Image<Rgb24> image, Span<float> chw) => Preprocess.ResizeNormalize(image, chw, Height, Width, Order);
}

/// <summary>Image files and encoded image bytes → preprocessed CHW floats (decoded by <see cref="Preprocess.DecodeRgb"/>,
/// one-line errors for bad images), and a parallel batch decode (images are independent, and decoding is most
/// of a data loader's time).</summary>
public static class ImageDecoding
{
    /// <summary>Floats per image of the seed model's format (<see cref="ImageFormat.Seed"/>).</summary>
    public static readonly int Size = ImageFormat.Seed.Size;

    /// <summary>Decodes one image into a [3, H, W] span.</summary>
    public delegate void Decoder(int index, Span<float> chw);

    /// <summary>An image file as RGB; a folder, a missing file or an undecodable one is an <see cref="InvalidDataException"/> naming it.</summary>
    public static Image<Rgb24> LoadFile(string path)
    {
        if (Directory.Exists(path)) throw new InvalidDataException($"image '{path}' is a folder");
        if (!File.Exists(path)) throw new InvalidDataException($"image not found: {path}");
        return Preprocess.LoadRgb(path);
    }

    public static void DecodeFile(string path, Span<float> chw, ImageFormat? format = null)
    {
        using var image = LoadFile(path);
        (format ?? ImageFormat.Seed).Write(image, chw);
    }

    /// <summary>
    /// Loads images 0..count-1 in parallel: each is the image, or null with the message of the
    /// <see cref="InvalidDataException"/> it threw. The caller disposes the images.
    /// </summary>
    public static (Image<Rgb24>?[] Images, string?[] Errors) LoadParallel(int count, Func<int, Image<Rgb24>> load)
    {
        var images = new Image<Rgb24>?[count];
        var errors = new string?[count];
        Parallel.For(0, count, k =>
        {
            try { images[k] = load(k); }
            catch (InvalidDataException e) { errors[k] = e.Message; }
        });
        return (images, errors);
    }

    /// <summary>
    /// Decodes image k of <paramref name="slots"/>.Count into slot <paramref name="slots"/>[k] of
    /// <paramref name="images"/> ([N, 3, H, W], <paramref name="imageSize"/> floats each, default the seed format's), in parallel. Returns, per image, null or the message of the
    /// <see cref="InvalidDataException"/> it threw (the slot of a failed image is zeroed).
    /// </summary>
    public static string?[] DecodeParallel(IReadOnlyList<int> slots, Decoder decode, float[] images, int? imageSize = null)
    {
        int size = imageSize ?? Size;
        if (slots.Count > 0 && (slots.Max() + 1) * size > images.Length)
            throw new ArgumentException($"slot {slots.Max()} does not fit {images.Length} floats");
        var errors = new string?[slots.Count];
        Parallel.For(0, slots.Count, k =>
        {
            var slot = images.AsSpan(slots[k] * size, size);
            try { decode(k, slot); }
            catch (InvalidDataException e)
            {
                slot.Clear();
                errors[k] = e.Message;
            }
        });
        return errors;
    }
}
