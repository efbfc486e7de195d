using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Xunit;

namespace Crnn.Engine.Tests;

public class SafeTensorsTests
{
    /// <summary>A file built byte by byte from the format description, independent of the writer.</summary>
    static byte[] HandBuilt()
    {
        // "b" (2 values) is stored before "a" (2×3 values); the header is padded with spaces.
        string json = """{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]},"__metadata__":{"step":"7"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   """;
        var header = Encoding.UTF8.GetBytes(json);
        var bytes = new List<byte>();
        bytes.AddRange(BitConverter.GetBytes((ulong)header.Length)); // little-endian on every machine we run on
        bytes.AddRange(header);
        foreach (float v in new[] { -1f, 2.5f, 1, 2, 3, 4, 5, 6 }) bytes.AddRange(BitConverter.GetBytes(v));
        return [.. bytes];
    }

    [Fact]
    public void ParsesAHandBuiltFile()
    {
        var file = SafeTensors.Parse(HandBuilt());
        Assert.Equal("7", file.Metadata["step"]);
        Assert.Equal([2, 3], file.Tensors["a"].Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6], file.Get("a"));
        Assert.Equal([-1f, 2.5f], file.Get("b"));
        Assert.Equal(2, file.Tensors.Count);
    }

    [Fact]
    public void WriterOutputFollowsTheFormat()
    {
        var stream = new MemoryStream();
        SafeTensors.Write(stream, [new("w", [3], new float[] { 1, 2, 3 }), new("s", [], new float[] { 9 })], new Dictionary<string, string> { ["k"] = "v" });
        var bytes = stream.ToArray();
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8); // data section 8-byte aligned
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)n));
        var w = header.RootElement.GetProperty("w");
        Assert.Equal("F32", w.GetProperty("dtype").GetString());
        Assert.Equal([3], w.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([0L, 12L], w.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal([12L, 16L], header.RootElement.GetProperty("s").GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("v", header.RootElement.GetProperty("__metadata__").GetProperty("k").GetString());
        Assert.Equal(8 + n + 16, bytes.Length);
        Assert.Equal(3f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan((int)(8 + n + 8))));
        Assert.Equal(9f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan((int)(8 + n + 12))));
    }

    [Fact]
    public void RoundTripIsBitExact()
    {
        var values = new[] { 0f, -0f, float.NaN, BitConverter.Int32BitsToSingle(0x7FC12345), float.PositiveInfinity, float.Epsilon, -3.4e38f, 1 / 3f };
        var stream = new MemoryStream();
        SafeTensors.Write(stream, [new("x", [2, 4], values)]);
        var back = SafeTensors.Parse(stream.ToArray()).Get("x");
        Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), back.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void TruncatedOrCorruptFilesAreRejected()
    {
        var good = HandBuilt();
        foreach (int length in new[] { 0, 5, 8, 40, good.Length - 1 })
            Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => SafeTensors.Parse(good[..length], "f.safetensors")).Message);
        Assert.Contains("trailing", Assert.Throws<InvalidDataException>(() => SafeTensors.Parse([.. good, 0, 0, 0, 0])).Message);

        var huge = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(huge, ulong.MaxValue);
        Assert.Throws<InvalidDataException>(() => SafeTensors.Parse(huge));

        Assert.Contains("JSON", Assert.Throws<InvalidDataException>(() => SafeTensors.Parse(Replace(good, "{\"a\"", "[\"a\""))).Message);
        Assert.Contains("F16", Assert.Throws<InvalidDataException>(() => SafeTensors.Parse(Replace(good, "\"F32\",\"shape\":[2,3]", "\"F16\",\"shape\":[2,3]"))).Message);
        Assert.Contains("hole", Assert.Throws<InvalidDataException>(() => SafeTensors.Parse(Replace(good, "[0,8]", "[4,12]"))).Message);
        Assert.Contains("do not hold", Assert.Throws<InvalidDataException>(() => SafeTensors.Parse(Replace(good, "[2,3]", "[2,2]"))).Message);
        Assert.Contains("malformed", Assert.Throws<InvalidDataException>(() => SafeTensors.Parse(Replace(good, "[2,3]", "[2,\"x\"]"))).Message);
    }

    [Fact]
    public void CopyToChecksNameAndShape()
    {
        var file = SafeTensors.Parse(HandBuilt(), "f.safetensors");
        var e = Assert.Throws<InvalidDataException>(() => file.CopyTo("c", new float[2]));
        Assert.Contains("missing tensor 'c'", e.Message);
        Assert.Contains("shape [2, 3], expected [3, 2]", Assert.Throws<InvalidDataException>(() => file.CopyTo("a", new float[6], [3, 2])).Message);
        Assert.Throws<InvalidDataException>(() => file.CopyTo("a", new float[5]));
    }

    [Fact]
    public void WriterRejectsInconsistentTensors()
    {
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(Stream.Null, [new("x", [2, 2], new float[3])]));
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(Stream.Null, [new("x", [1], new float[1]), new("x", [1], new float[1])]));
    }

    /// <summary>Edits the JSON header, keeping its length (pads or trims the trailing spaces).</summary>
    static byte[] Replace(byte[] file, string from, string to)
    {
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        string json = Encoding.UTF8.GetString(file, 8, n);
        Assert.Contains(from, json);
        string edited = json.Replace(from, to).TrimEnd();
        Assert.True(edited.Length <= n);
        var result = (byte[])file.Clone();
        Encoding.UTF8.GetBytes(edited.PadRight(n)).CopyTo(result, 8);
        return result;
    }
}
