using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using System.Text;
using LightningDB;

namespace Crnn.Engine.Data;

/// <summary>
/// An LMDB dataset in the MJSynth/SynthText layout of the scene-text benchmarks (clovaai's
/// deep-text-recognition-benchmark, PaddleOCR's LMDBDataSet): key <c>num-samples</c> holds the count as ASCII
/// digits; sample i (1-based) is <c>image-%09d</c> (encoded image bytes) and <c>label-%09d</c> (UTF-8 text).
/// Opened read-only without a lock file, as PaddleOCR does (<c>lock=False</c>), so a dataset on a read-only
/// disk works and nothing is written beside it. Every label is checked when it opens; only the numbers of
/// usable samples are kept in memory, and texts and images are read back on demand.
/// </summary>
public sealed class LmdbDataset : ILabeledDataset
{
    const int VersionMismatch = -30794, Invalid = -30793; // MDB_VERSION_MISMATCH, MDB_INVALID

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    readonly LightningEnvironment _environment;
    readonly LightningDatabase _database;
    readonly CharDictionary _dictionary;
    readonly LabelCase _case;
    readonly int[] _numbers; // 1-based sample numbers of the usable samples

    public string Name { get; }
    public int Count => _numbers.Length;
    public SkipList Skipped { get; }

    /// <summary>True when <paramref name="folder"/> holds an LMDB environment (data.mdb).</summary>
    public static bool IsLmdb(string folder) => File.Exists(Path.Combine(folder, "data.mdb"));

    public LmdbDataset(string folder, CharDictionary dictionary, int maxSteps, LabelCase labelCase, bool strict = false)
    {
        if (!IsLmdb(folder)) throw new FileNotFoundException($"no LMDB dataset in '{folder}' (no data.mdb)");
        Name = folder;
        _dictionary = dictionary;
        _case = labelCase.Resolve(dictionary);
        Skipped = new SkipList(strict);
        LmdbLibrary.Require();
        _environment = new LightningEnvironment(folder);
        try
        {
            _environment.Open(EnvironmentOpenFlags.ReadOnly | EnvironmentOpenFlags.NoLock | EnvironmentOpenFlags.NoReadAhead
                              | EnvironmentOpenFlags.NoThreadLocalStorage);
            using var transaction = _environment.BeginTransaction(TransactionBeginFlags.ReadOnly);
            _database = transaction.OpenDatabase(closeOnDispose: false);
            _numbers = CheckLabels(transaction, maxSteps);
        }
        catch (LightningException e)
        {
            _environment.Dispose();
            // Python's lmdb writes LMDB 0.9's format, which the LMDB 1.0 bundled with LightningDB cannot read.
            string hint = e.StatusCode is VersionMismatch or Invalid
                ? $" (the library in use is {LmdbLibrary.Version}; the public datasets are in LMDB 0.9's format: {LmdbLibrary.InstallHint})"
                : "";
            throw new InvalidDataException($"cannot read LMDB '{folder}': {e.Message}{hint}", e);
        }
        catch
        {
            _environment.Dispose();
            throw;
        }
        if (_numbers.Length == 0)
        {
            _environment.Dispose();
            throw new InvalidDataException($"LMDB {folder} has no usable samples" + (Skipped.Count > 0 ? $" ({Skipped.Summary()})" : " (num-samples is 0)"));
        }
    }

    int[] CheckLabels(LightningTransaction transaction, int maxSteps)
    {
        var countBytes = Get(transaction, "num-samples")
            ?? throw new InvalidDataException($"'{Name}' is not an MJSynth/SynthText LMDB: it has no 'num-samples' key");
        if (!int.TryParse(Encoding.ASCII.GetString(countBytes), out int total) || total < 0)
            throw new InvalidDataException($"LMDB '{Name}': num-samples is not a count ('{Encoding.ASCII.GetString(countBytes)}')");
        var usable = new List<int>();
        for (int number = 1; number <= total; number++)
        {
            if (ReadLabel(transaction, number, out var raw) is { } problem) { Skipped.Add(LabelKey(number), problem, problem); continue; }
            if (LabelCheck.TryEncode(raw, _dictionary, maxSteps, _case, out _, out _, out var reason, out var detail)) usable.Add(number);
            else Skipped.Add(LabelKey(number), reason, detail);
        }
        return [.. usable];
    }

    string LabelKey(int number) => $"{Name} label-{number:D9}";

    /// <summary>The raw label of a sample, or the problem with it. (Called millions of times when an MJSynth-sized
    /// LMDB opens: the key is formatted on the stack and the value decoded in place.)</summary>
    string? ReadLabel(LightningTransaction transaction, int number, out string text)
    {
        text = "";
        Span<byte> key = stackalloc byte[KeyLength];
        var (code, _, value) = transaction.Get(_database, Key("label-"u8, number, key));
        if (code == MDBResultCode.NotFound) return "missing label";
        code.ThrowOnError();
        try { text = StrictUtf8.GetString(value.AsSpan()); }
        catch (DecoderFallbackException) { return "label is not valid UTF-8"; }
        return null;
    }

    const int KeyLength = 6 + 9; // "image-" or "label-", then 9 digits

    /// <summary>"image-%09d" / "label-%09d" as ASCII bytes.</summary>
    static ReadOnlySpan<byte> Key(ReadOnlySpan<byte> prefix, int number, Span<byte> key)
    {
        prefix.CopyTo(key);
        if (!number.TryFormat(key[prefix.Length..], out int written, "D9") || written != 9)
            throw new InvalidDataException($"sample number {number} does not fit the LMDB key format");
        return key;
    }

    byte[]? Get(LightningTransaction transaction, string key)
    {
        var (code, _, value) = transaction.Get(_database, Encoding.ASCII.GetBytes(key));
        if (code == MDBResultCode.NotFound) return null;
        code.ThrowOnError();
        return value.CopyToNewArray();
    }

    public string Text(int index)
    {
        using var transaction = _environment.BeginTransaction(TransactionBeginFlags.ReadOnly);
        if (ReadLabel(transaction, _numbers[index], out var raw) is { } problem)
            throw new InvalidDataException($"{Describe(index)}: {problem} (the LMDB changed after it was opened)");
        return _case.Apply(raw);
    }

    public int[] Label(int index) => _dictionary.Encode(Text(index));

    public string Describe(int index) => $"{Name} image-{_numbers[index]:D9}";

    public Image<Rgb24> Load(int index)
    {
        string key = $"image-{_numbers[index]:D9}";
        Span<byte> keyBytes = stackalloc byte[KeyLength];
        using var transaction = _environment.BeginTransaction(TransactionBeginFlags.ReadOnly);
        var (code, _, value) = transaction.Get(_database, Key("image-"u8, _numbers[index], keyBytes));
        if (code == MDBResultCode.NotFound) throw new InvalidDataException($"{Name}: no {key}");
        if (code != MDBResultCode.Success) throw new InvalidDataException($"{Name}: cannot read {key} ({code})");
        // The value points into the memory map and is valid while the transaction is open: decode it in place.
        return Preprocess.DecodeRgb(value.AsSpan(), $"{Name} {key}");
    }

    public void Dispose()
    {
        _database.Dispose();
        _environment.Dispose();
    }
}
