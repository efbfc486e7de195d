using System.Buffers.Binary;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Webp;

namespace Crnn.Engine;

/// <summary>
/// Finds image files cut short (an interrupted copy or download). ImageSharp decodes many of them without
/// complaint, filling the missing rows with black or gray, which would quietly train on damaged images.
/// Only the container structure is walked (chunks, blocks, markers, the size of the pixel data), not the pixels.
/// </summary>
static class TruncatedImage
{
    /// <summary>What is missing, or null when the structure is complete (TIFF and PBM are not checked).</summary>
    public static string? Problem(ReadOnlySpan<byte> file, IImageFormat format) => format switch
    {
        PngFormat => Png(file),
        JpegFormat => Jpeg(file),
        GifFormat => Gif(file),
        WebpFormat => Webp(file),
        BmpFormat => Bmp(file),
        TgaFormat => Tga(file),
        _ => null,
    };

    /// <summary>Chunks (length, type, data, CRC) from byte 8 up to IEND.</summary>
    static string? Png(ReadOnlySpan<byte> file)
    {
        int at = 8;
        while (at + 8 <= file.Length)
        {
            long end = at + 12L + BinaryPrimitives.ReadUInt32BigEndian(file[at..]);
            string type = System.Text.Encoding.ASCII.GetString(file.Slice(at + 4, 4));
            if (end > file.Length) return $"the PNG chunk {type} is cut short";
            if (type == "IEND") return null;
            at = (int)end;
        }
        return "the PNG ends before its IEND chunk";
    }

    /// <summary>The end-of-image marker must follow the last start-of-scan marker (scan data never contains FF DA or FF D9).</summary>
    static string? Jpeg(ReadOnlySpan<byte> file)
    {
        int scan = file.LastIndexOf([(byte)0xFF, (byte)0xDA]);
        if (scan < 0) return "the JPEG has no image data (no start-of-scan marker)";
        return file[scan..].IndexOf([(byte)0xFF, (byte)0xD9]) < 0 ? "the JPEG ends before its end-of-image marker" : null;
    }

    /// <summary>Header, color tables, extension and image blocks (each a chain of sub-blocks) up to the trailer 0x3B.</summary>
    static string? Gif(ReadOnlySpan<byte> file)
    {
        const string Short = "the GIF ends before its trailer";
        if (file.Length < 13) return Short;
        int at = 13 + ColorTable(file[10]);
        while (at < file.Length)
        {
            switch (file[at])
            {
                case 0x3B: return null;
                case 0x21: // extension: introducer, label, sub-blocks
                    at = SkipSubBlocks(file, at + 2);
                    break;
                case 0x2C: // image: descriptor (10 bytes), local color table, LZW code size, sub-blocks
                    if (at + 10 > file.Length) return Short;
                    at = SkipSubBlocks(file, at + 10 + ColorTable(file[at + 9]) + 1);
                    break;
                default:
                    return $"the GIF has an unknown block 0x{file[at]:X2} at byte {at}";
            }
        }
        return Short;

        static int ColorTable(byte packed) => (packed & 0x80) != 0 ? 3 << ((packed & 7) + 1) : 0;
    }

    /// <summary>The offset after a chain of GIF sub-blocks (size byte, data) ending in a 0 size; past the end if cut.</summary>
    static int SkipSubBlocks(ReadOnlySpan<byte> file, int at)
    {
        while (at < file.Length && file[at] != 0) at += file[at] + 1;
        return at + 1;
    }

    /// <summary>The RIFF header's size covers the whole file.</summary>
    static string? Webp(ReadOnlySpan<byte> file) =>
        file.Length < 12 || 8L + BinaryPrimitives.ReadUInt32LittleEndian(file[4..]) > file.Length
            ? "the WebP file is shorter than its RIFF header says" : null;

    /// <summary>Uncompressed rows (padded to 4 bytes) from the pixel-data offset; compressed data by its stated size.</summary>
    static string? Bmp(ReadOnlySpan<byte> file)
    {
        if (file.Length < 26) return "the BMP header is cut short";
        long offset = BinaryPrimitives.ReadUInt32LittleEndian(file[10..]);
        long width, height, bits, compression, dataSize = 0;
        if (BinaryPrimitives.ReadUInt32LittleEndian(file[14..]) == 12) // OS/2 core header
            (width, height, bits, compression) = (BinaryPrimitives.ReadInt16LittleEndian(file[18..]), BinaryPrimitives.ReadInt16LittleEndian(file[20..]), BinaryPrimitives.ReadUInt16LittleEndian(file[24..]), 0);
        else if (file.Length < 38) return "the BMP header is cut short";
        else
        {
            (width, height) = (BinaryPrimitives.ReadInt32LittleEndian(file[18..]), Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(file[22..])));
            (bits, compression) = (BinaryPrimitives.ReadUInt16LittleEndian(file[28..]), BinaryPrimitives.ReadUInt32LittleEndian(file[30..]));
            dataSize = BinaryPrimitives.ReadUInt32LittleEndian(file[34..]);
        }
        bool uncompressed = compression is 0 or 3 or 6; // RGB, bit fields, alpha bit fields
        long needed = uncompressed ? offset + (width * bits + 31) / 32 * 4 * Math.Abs(height) : offset + dataSize;
        return file.Length < needed ? $"the BMP pixel data is cut short ({file.Length} of {needed} bytes)" : null;
    }

    /// <summary>Header, image id, color map, then raw pixels or run-length packets for every pixel.</summary>
    static string? Tga(ReadOnlySpan<byte> file)
    {
        const string Short = "the TGA pixel data is cut short";
        if (file.Length < 18) return "the TGA header is cut short";
        int type = file[2], bytesPerPixel = (file[16] + 7) / 8;
        long mapBytes = file[1] != 0 ? (BinaryPrimitives.ReadUInt16LittleEndian(file[5..]) * (long)file[7] + 7) / 8 : 0;
        long pixels = (long)BinaryPrimitives.ReadUInt16LittleEndian(file[12..]) * BinaryPrimitives.ReadUInt16LittleEndian(file[14..]);
        long at = 18 + file[0] + mapBytes;
        if (type is 1 or 2 or 3) return at + pixels * bytesPerPixel > file.Length ? Short : null;
        if (type is not (9 or 10 or 11)) return null;
        for (long done = 0; done < pixels;)
        {
            if (at >= file.Length) return Short;
            int packet = file[(int)at];
            int count = (packet & 0x7F) + 1;
            at += 1 + ((packet & 0x80) != 0 ? bytesPerPixel : (long)count * bytesPerPixel);
            done += count;
        }
        return at > file.Length ? Short : null;
    }
}
