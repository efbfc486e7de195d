using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
namespace Crnn.Engine.Data;

/// <summary>Opens datasets by path: a PaddleOCR label file, an LMDB folder, or a folder of LMDB folders.</summary>
public static class Datasets
{
    /// <summary>
    /// A file is read as a PaddleOCR label file; a folder holding data.mdb (or the data.mdb file itself) as an
    /// LMDB; any other folder as the concatenation of the LMDB folders below it, in path order (PaddleOCR's
    /// hierarchical LMDB loading, e.g. MJ/MJ_train + ST).
    /// </summary>
    public static ILabeledDataset Open(string path, CharDictionary dictionary, int maxSteps, LabelCase labelCase, bool strict = false)
    {
        if (File.Exists(path))
        {
            return Path.GetFileName(path) == "data.mdb"
                ? new LmdbDataset(Path.GetDirectoryName(Path.GetFullPath(path))!, dictionary, maxSteps, labelCase, strict)
                : LabelFileDataset.Open(path, dictionary, maxSteps, labelCase, strict);
        }
        if (!Directory.Exists(path)) throw new FileNotFoundException($"dataset not found: {path} (a label file or an LMDB folder)");
        if (LmdbDataset.IsLmdb(path)) return new LmdbDataset(path, dictionary, maxSteps, labelCase, strict);
        var folders = Directory.EnumerateDirectories(path, "*", SearchOption.AllDirectories)
            .Where(LmdbDataset.IsLmdb).Order(StringComparer.Ordinal).ToList();
        if (folders.Count == 0) throw new FileNotFoundException($"no LMDB dataset (data.mdb) in or below folder '{path}'");
        return Concat(folders.Select(f => (ILabeledDataset)new LmdbDataset(f, dictionary, maxSteps, labelCase, strict)).ToList(), path);
    }

    /// <summary>Several paths as one dataset, in the given order.</summary>
    public static ILabeledDataset Open(IReadOnlyList<string> paths, CharDictionary dictionary, int maxSteps, LabelCase labelCase, bool strict = false)
    {
        if (paths.Count == 0) throw new ArgumentException("no dataset given");
        if (paths.Count == 1) return Open(paths[0], dictionary, maxSteps, labelCase, strict);
        var parts = new List<ILabeledDataset>();
        try
        {
            foreach (var path in paths) parts.Add(Open(path, dictionary, maxSteps, labelCase, strict));
        }
        catch
        {
            foreach (var part in parts) part.Dispose();
            throw;
        }
        return Concat(parts, string.Join(", ", paths));
    }

    static ILabeledDataset Concat(IReadOnlyList<ILabeledDataset> parts, string name) => parts.Count == 1 ? parts[0] : new ConcatDataset(parts, name);
}

/// <summary>Datasets one after the other; owns and disposes its parts.</summary>
public sealed class ConcatDataset : ILabeledDataset
{
    readonly IReadOnlyList<ILabeledDataset> _parts;
    readonly int[] _starts; // index of each part's first sample; strictly increasing, as no dataset is empty

    public ConcatDataset(IReadOnlyList<ILabeledDataset> parts, string name)
    {
        if (parts.Count == 0) throw new ArgumentException("no dataset to concatenate");
        _parts = parts;
        Name = name;
        _starts = new int[parts.Count];
        long total = 0;
        Skipped = new SkipList();
        for (int p = 0; p < parts.Count; p++)
        {
            _starts[p] = (int)total;
            total += parts[p].Count;
            Skipped.AddRange(parts[p].Skipped);
        }
        if (total > int.MaxValue) throw new ArgumentException($"{total:N0} samples is more than one dataset can index");
        Count = (int)total;
    }

    public IReadOnlyList<ILabeledDataset> Parts => _parts;
    public string Name { get; }
    public int Count { get; }
    public SkipList Skipped { get; }

    (ILabeledDataset Part, int Index) Locate(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), index, $"dataset has {Count} samples");
        int p = Array.BinarySearch(_starts, index);
        if (p < 0) p = ~p - 1;
        return (_parts[p], index - _starts[p]);
    }

    public string Text(int index) { var (part, i) = Locate(index); return part.Text(i); }
    public int[] Label(int index) { var (part, i) = Locate(index); return part.Label(i); }
    public string Describe(int index) { var (part, i) = Locate(index); return part.Describe(i); }
    public Image<Rgb24> Load(int index) { var (part, i) = Locate(index); return part.Load(i); }

    public void Dispose()
    {
        foreach (var part in _parts) part.Dispose();
    }
}
