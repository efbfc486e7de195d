namespace Crnn.Engine.Data;

/// <summary>Image files and encoded image bytes → preprocessed CHW floats (decoded by <see cref="Preprocess.DecodeRgb"/>,
/// one-line errors for bad images), and a parallel batch decode (images are independent, and decoding is most
/// of a data loader's time).</summary>
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
        using var image = Preprocess.LoadRgb(path);
        Preprocess.ResizeNormalize(image, chw);
    }

    /// <summary>Decodes an encoded image (PNG, JPEG, ...) held in memory, e.g. an LMDB value; <paramref name="name"/> is for messages.</summary>
    public static void DecodeBytes(ReadOnlySpan<byte> bytes, string name, Span<float> chw)
    {
        using var image = Preprocess.DecodeRgb(bytes, name);
        Preprocess.ResizeNormalize(image, chw);
    }

    /// <summary>
    /// Decodes image k of <paramref name="slots"/>.Count into slot <paramref name="slots"/>[k] of
    /// <paramref name="images"/> ([N, 3, 32, 100]), in parallel. Returns, per image, null or the message of the
    /// <see cref="InvalidDataException"/> it threw (the slot of a failed image is zeroed).
    /// </summary>
    public static string?[] DecodeParallel(IReadOnlyList<int> slots, Decoder decode, float[] images)
    {
        if (slots.Count > 0 && (slots.Max() + 1) * Size > images.Length)
            throw new ArgumentException($"slot {slots.Max()} does not fit {images.Length} floats");
        var errors = new string?[slots.Count];
        Parallel.For(0, slots.Count, k =>
        {
            var slot = images.AsSpan(slots[k] * Size, Size);
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
    /// Decodes <paramref name="count"/> images into slots 0, 1, ... of <paramref name="images"/>, then moves the
    /// good ones down to consecutive slots from 0, in their order; the errors still line up with the inputs.
    /// </summary>
    public static string?[] DecodePacked(int count, Decoder decode, float[] images)
    {
        var errors = DecodeParallel(Enumerable.Range(0, count).ToArray(), decode, images);
        int slot = 0;
        for (int k = 0; k < count; k++)
        {
            if (errors[k] != null) continue;
            // slot ≤ k: copying in order never overwrites an image still to move
            if (slot != k) images.AsSpan(k * Size, Size).CopyTo(images.AsSpan(slot * Size, Size));
            slot++;
        }
        return errors;
    }
}
