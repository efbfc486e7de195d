using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Crnn.Engine.Data;

/// <summary>Image files and encoded image bytes → preprocessed CHW floats, one-line errors for bad images,
/// and a parallel batch decode (images are independent, and decoding is most of a data loader's time).</summary>
public static class ImageDecoding
{
    public const int Height = 32, Width = 100;
    public const int Size = Preprocess.Channels * Height * Width;

    /// <summary>Decodes one image into a [3, 32, 100] span.</summary>
    public delegate void Decoder(int index, Span<float> chw);

    public static void DecodeFile(string path, Span<float> chw)
    {
        if (Directory.Exists(path)) throw new InvalidDataException($"image '{path}' is a folder");
        if (!File.Exists(path)) throw new InvalidDataException($"image not found: {path}");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"cannot read image '{path}': {e.Message}", e);
        }
        DecodeBytes(bytes, $"'{path}'", chw);
    }

    /// <summary>Decodes an encoded image (PNG, JPEG, ...) held in memory, e.g. an LMDB value; <paramref name="name"/> is for messages.</summary>
    public static void DecodeBytes(ReadOnlySpan<byte> bytes, string name, Span<float> chw)
    {
        if (bytes.IsEmpty) throw new InvalidDataException($"image {name} is empty (0 bytes)");
        Image<Rgb24> image;
        try { image = Image.Load<Rgb24>(bytes); }
        catch (Exception e) when (e is ImageFormatException or NotSupportedException)
        {
            throw new InvalidDataException($"cannot read image {name}: {e.Message}", e);
        }
        using (image) Preprocess.ResizeNormalize(image, chw);
    }

    /// <summary>
    /// Decodes <paramref name="count"/> images in parallel into consecutive [3, 32, 100] slots of
    /// <paramref name="images"/> starting at slot <paramref name="firstSlot"/>. Returns, per image, null or the
    /// message of the <see cref="InvalidDataException"/> it threw (the slot of a failed image is left zeroed).
    /// </summary>
    public static string?[] DecodeParallel(int count, Decoder decode, float[] images, int firstSlot = 0)
    {
        if ((firstSlot + count) * Size > images.Length)
            throw new ArgumentException($"{count} images from slot {firstSlot} do not fit {images.Length} floats");
        var errors = new string?[count];
        Parallel.For(0, count, k =>
        {
            var slot = images.AsSpan((firstSlot + k) * Size, Size);
            try { decode(k, slot); }
            catch (InvalidDataException e)
            {
                slot.Clear();
                errors[k] = e.Message;
            }
        });
        return errors;
    }

    /// <summary>
    /// <see cref="DecodeParallel"/>, then the good images moved down to consecutive slots from
    /// <paramref name="firstSlot"/>, in their order; the errors still line up with the inputs.
    /// </summary>
    public static string?[] DecodePacked(int count, Decoder decode, float[] images, int firstSlot = 0)
    {
        var errors = DecodeParallel(count, decode, images, firstSlot);
        int slot = firstSlot;
        for (int k = 0; k < count; k++)
        {
            if (errors[k] != null) continue;
            // slot ≤ firstSlot + k: copying in order never overwrites an image still to move
            if (slot != firstSlot + k) images.AsSpan((firstSlot + k) * Size, Size).CopyTo(images.AsSpan(slot * Size, Size));
            slot++;
        }
        return errors;
    }
}
