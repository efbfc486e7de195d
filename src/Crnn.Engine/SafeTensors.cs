using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Crnn.Engine;

/// <summary>One float32 tensor to write: its name, shape and values (length = product of the shape).</summary>
public sealed record NamedTensor(string Name, int[] Shape, ReadOnlyMemory<float> Data);

/// <summary>
/// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of JSON
/// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {string: string}}, then the raw
/// little-endian tensor bytes, offsets relative to the end of the header. Only F32 is written or read.
/// </summary>
public static class SafeTensors
{
    const string MetadataKey = "__metadata__";
    const long MaxHeaderBytes = 100_000_000; // the reference implementation's limit

    public static void Write(Stream stream, IEnumerable<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
            header[MetadataKey] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        foreach (var t in list)
        {
            long length = t.Shape.Aggregate(1L, (a, b) => a * b);
            if (t.Shape.Any(d => d < 0) || length != t.Data.Length)
                throw new ArgumentException($"tensor '{t.Name}': shape [{string.Join(", ", t.Shape)}] does not match {t.Data.Length} values");
            if (t.Name == MetadataKey || header.ContainsKey(t.Name))
                throw new ArgumentException($"tensor name '{t.Name}' is reserved or used twice");
            header[t.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray([.. t.Shape.Select(d => (JsonNode?)JsonValue.Create(d))]),
                ["data_offsets"] = new JsonArray(offset, offset + 4 * length),
            };
            offset += 4 * length;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8; // pad with spaces so the data starts 8-byte aligned, as the reference writer does
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
        stream.Write(prefix);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var t in list) WriteFloats(stream, t.Data.Span);
    }

    static void WriteFloats(Stream stream, ReadOnlySpan<float> values)
    {
        if (BitConverter.IsLittleEndian) { stream.Write(MemoryMarshal.AsBytes(values)); return; }
        var buffer = new byte[4];
        foreach (float v in values)
        {
            BinaryPrimitives.WriteSingleLittleEndian(buffer, v);
            stream.Write(buffer);
        }
    }

    public static SafeTensorFile Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"cannot read '{path}': {e.Message}", e);
        }
        return Parse(bytes, path);
    }

    /// <summary>Parses and validates a whole file: header, dtypes, shapes, and offsets that tile the data exactly.</summary>
    public static SafeTensorFile Parse(byte[] bytes, string source = "safetensors data")
    {
        InvalidDataException Bad(string why) => new($"{source}: {why}");
        if (bytes.Length < 8) throw Bad($"truncated: {bytes.Length} bytes, shorter than the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > MaxHeaderBytes || 8 + (long)headerLength > bytes.Length)
            throw Bad($"truncated or corrupt: header claims {headerLength} bytes, file has {bytes.Length}");
        int dataStart = 8 + (int)headerLength;

        JsonObject header;
        try
        {
            header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength)) as JsonObject
                ?? throw Bad("the header is not a JSON object");
        }
        catch (JsonException e) { throw Bad($"the header is not valid JSON ({e.Message})"); }

        var metadata = new Dictionary<string, string>();
        var tensors = new Dictionary<string, TensorInfo>();
        foreach (var (name, node) in header)
        {
            if (name == MetadataKey)
            {
                foreach (var (key, value) in node as JsonObject ?? throw Bad("__metadata__ is not an object"))
                    metadata[key] = value is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Bad($"metadata '{key}' is not a string");
                continue;
            }
            tensors[name] = ParseEntry(name, node, Bad);
        }

        // The data must be covered exactly: no holes, no overlaps, nothing past the end.
        long expected = 0;
        foreach (var t in tensors.Values.OrderBy(t => t.Begin))
        {
            if (t.Begin != expected) throw Bad($"tensor '{t.Name}' starts at byte {t.Begin}, expected {expected} (hole or overlap)");
            expected = t.End;
        }
        long dataLength = bytes.Length - dataStart;
        if (expected != dataLength)
            throw Bad(expected > dataLength
                ? $"truncated: tensors need {expected} data bytes, file has {dataLength}"
                : $"{dataLength - expected} trailing bytes after the last tensor");
        return new SafeTensorFile(source, bytes, dataStart, tensors, metadata);
    }

    static TensorInfo ParseEntry(string name, JsonNode? node, Func<string, InvalidDataException> bad)
    {
        try
        {
            var entry = node as JsonObject ?? throw bad($"tensor '{name}' is not an object");
            string dtype = entry["dtype"]?.GetValue<string>() ?? throw bad($"tensor '{name}' has no dtype");
            if (dtype != "F32") throw bad($"tensor '{name}' is {dtype}; only F32 is supported");
            var shape = (entry["shape"] as JsonArray ?? throw bad($"tensor '{name}' has no shape"))
                .Select(d => d!.GetValue<int>()).ToArray();
            var offsets = entry["data_offsets"] as JsonArray;
            if (offsets is not { Count: 2 }) throw bad($"tensor '{name}' needs data_offsets [begin, end]");
            long begin = offsets[0]!.GetValue<long>(), end = offsets[1]!.GetValue<long>();
            long count = shape.Aggregate(1L, (a, b) => a * b);
            if (shape.Any(d => d < 0) || begin < 0 || end - begin != 4 * count)
                throw bad($"tensor '{name}': offsets [{begin}, {end}] do not hold shape [{string.Join(", ", shape)}] of F32");
            return new TensorInfo(name, shape, begin, end);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw bad($"tensor '{name}' has a malformed entry ({e.Message})");
        }
    }
}

/// <summary>Where one tensor lives in a parsed file (byte offsets relative to the data section).</summary>
public sealed record TensorInfo(string Name, int[] Shape, long Begin, long End)
{
    public int Length => (int)((End - Begin) / 4);
}

/// <summary>A parsed, validated safetensors file held in memory.</summary>
public sealed class SafeTensorFile(string source, byte[] bytes, int dataStart, IReadOnlyDictionary<string, TensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
{
    public string Source => source;
    public IReadOnlyDictionary<string, TensorInfo> Tensors => tensors;
    public IReadOnlyDictionary<string, string> Metadata => metadata;

    /// <summary>Copies tensor <paramref name="name"/> into <paramref name="destination"/>, which must match its
    /// length; <paramref name="expectedShape"/>, when given, must match exactly.</summary>
    public void CopyTo(string name, Span<float> destination, int[]? expectedShape = null)
    {
        if (!tensors.TryGetValue(name, out var info)) throw new InvalidDataException($"{source}: missing tensor '{name}'");
        if (expectedShape is not null && !expectedShape.SequenceEqual(info.Shape))
            throw new InvalidDataException($"{source}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}], expected [{string.Join(", ", expectedShape)}]");
        if (destination.Length != info.Length)
            throw new InvalidDataException($"{source}: tensor '{name}' has {info.Length} values, expected {destination.Length}");
        var raw = bytes.AsSpan(dataStart + (int)info.Begin, 4 * info.Length);
        if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, float>(raw).CopyTo(destination);
        else for (int i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadSingleLittleEndian(raw[(4 * i)..]);
    }

    public float[] Get(string name)
    {
        var values = new float[tensors.TryGetValue(name, out var info) ? info.Length : 0];
        CopyTo(name, values);
        return values;
    }
}
