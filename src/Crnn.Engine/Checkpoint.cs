using System.Text.Json;
using System.Text.Json.Serialization;

namespace Crnn.Engine;

/// <summary>A checkpoint could not be written or read; the message is one line naming the file and the cause.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>Where the training data stream stands: sample i of a seeded stream is a function of (seed, i),
/// so the seed and the number of samples drawn resume it exactly.</summary>
public sealed record RngState(int Seed, long SamplesDrawn);

/// <summary>
/// A training checkpoint in one folder:
/// <c>model.safetensors</c> (parameters and BatchNorm running buffers, named by <see cref="ParameterLayout"/>),
/// <c>optimizer.safetensors</c> (Adam moments per tensor, "NAME.adam_m" / "NAME.adam_v", and the step), and
/// <c>model.json</c> (configuration, dictionary, step, epoch, data RNG state, metrics).
/// Every file is written to a temp file in the same folder and flushed to disk before any is renamed over
/// the previous one, so a failed save leaves the previous checkpoint as it was. All three files carry one
/// checkpoint id, and model.json, renamed last, commits the save. A process killed between the renames leaves
/// model.safetensors (and maybe optimizer.safetensors) of the new save beside model.json of the old one: the
/// rest of the new save is then complete in its temp files, and <see cref="Load"/> reads it from them, so a
/// folder always loads as one whole save, the old or the new. The next save removes such leftovers.
/// </summary>
public sealed class Checkpoint
{
    public const string ModelFile = "model.safetensors", OptimizerFile = "optimizer.safetensors", MetadataFile = "model.json";
    const string Format = "crnn-gpu-checkpoint";
    const int Version = 1;

    public required ModelConfig Config { get; init; }
    public required CharDictionary Dictionary { get; init; }
    /// <summary>Flat parameters in <see cref="ParameterLayout"/> order.</summary>
    public required float[] Parameters { get; init; }
    /// <summary>Flat BatchNorm running statistics in <see cref="ParameterLayout.Buffers"/> order.</summary>
    public required float[] Buffers { get; init; }
    /// <summary>Adam first and second moments, flat like <see cref="Parameters"/>; both or neither.</summary>
    public float[]? AdamM { get; init; }
    public float[]? AdamV { get; init; }
    public long Step { get; init; }
    public int Epoch { get; init; }
    public RngState Rng { get; init; } = new(0, 0);
    public IReadOnlyDictionary<string, double> Metrics { get; init; } = new Dictionary<string, double>();

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals, // metrics may be NaN or ∞
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>The fields after Width are absent in checkpoints of the seed model written before the model family
    /// was data: null means the seed model's value.</summary>
    sealed record ConfigJson(double Scale, int Classes, int Hidden, int Height, int Width,
        Backbone? Backbone = null, int[]? Strides = null, ChannelOrder? ChannelOrder = null, bool? DynamicWidth = null)
    {
        public static ConfigJson From(ModelConfig c) =>
            new(c.Scale, c.Classes, c.Hidden, c.Height, c.Width, c.Backbone, c.StageStrides.ToArray(), c.ChannelOrder, c.DynamicWidth);

        public ModelConfig ToConfig() => new(Scale, Classes, Hidden, Height, Width, Backbone ?? Engine.Backbone.Large,
            Strides is null ? null : StageStrides.FromArray(Strides), ChannelOrder ?? Engine.ChannelOrder.Rgb, DynamicWidth ?? false);
    }
    /// <summary><see cref="Optimizer"/>: whether optimizer.safetensors belongs to this save (null in checkpoints
    /// written before it was recorded: then it does when present).</summary>
    sealed record MetadataJson(string Format, int Version, string CheckpointId, ConfigJson Config, string[] Dictionary,
        long Step, int Epoch, RngState Rng, Dictionary<string, double> Metrics, bool? Optimizer);

    public void Save(string folder) => Save(folder, path => new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None));

    /// <summary>Save with a given way to create the temp files (tests use it to fail mid-write); tests stop a save
    /// between its renames, as a kill would, with <paramref name="beforeRename"/> (called with each final name).</summary>
    internal void Save(string folder, Func<string, Stream> createFile, Action<string>? beforeRename = null)
    {
        var layout = new ParameterLayout(Config);
        Validate(layout);
        string id = Guid.NewGuid().ToString("N");
        var tensorMetadata = new Dictionary<string, string> { ["checkpoint_id"] = id, ["step"] = Step.ToString() };
        var files = new List<(string Final, Action<Stream> Write)>
        {
            (ModelFile, s => SafeTensors.Write(s, ModelTensors(layout), tensorMetadata)),
        };
        if (AdamM is not null) files.Add((OptimizerFile, s => SafeTensors.Write(s, OptimizerTensors(layout), tensorMetadata)));
        var metadata = new MetadataJson(Format, Version, id,
            ConfigJson.From(Config),
            [.. Dictionary.Symbols], Step, Epoch, Rng, new Dictionary<string, double>(Metrics), Optimizer: AdamM is not null);
        files.Add((MetadataFile, s => JsonSerializer.Serialize(s, metadata, Json))); // last: it names the checkpoint

        var temps = new List<string>();
        int renamed = 0;
        try
        {
            Directory.CreateDirectory(folder);
            foreach (var (final, write) in files)
            {
                string temp = TempPath(folder, final, id);
                temps.Add(temp);
                using var stream = createFile(temp);
                write(stream);
                if (stream is FileStream fs) fs.Flush(flushToDisk: true);
                else stream.Flush();
            }
            for (; renamed < files.Count; renamed++)
            {
                beforeRename?.Invoke(files[renamed].Final);
                File.Move(temps[renamed], Path.Combine(folder, files[renamed].Final), overwrite: true);
            }
            if (AdamM is null) File.Delete(Path.Combine(folder, OptimizerFile)); // a stale one would belong to another save
            RemoveLeftovers(folder);
        }
        catch (Exception e)
        {
            // Once a file is renamed, the temps left are the rest of this save, which Load completes it from.
            if (renamed == 0) foreach (var temp in temps) TryDelete(temp);
            if (e is IOException or UnauthorizedAccessException)
                throw new CheckpointException($"cannot save checkpoint to '{folder}': {e.Message.Split('\n')[0]}", e);
            throw;
        }
    }

    /// <summary>Where a save with checkpoint id <paramref name="id"/> writes <paramref name="final"/> before renaming it.</summary>
    static string TempPath(string folder, string final, string id) => Path.Combine(folder, $".{final}.{id}.tmp");

    /// <summary>Removes the temp files of saves killed before they were committed (or while their renames went
    /// on): once this save's files are all in place, none of them is needed to load the folder.</summary>
    static void RemoveLeftovers(string folder)
    {
        foreach (var final in new[] { ModelFile, OptimizerFile, MetadataFile })
            foreach (var temp in Directory.EnumerateFiles(folder, $".{final}.*.tmp"))
                TryDelete(temp);
    }

    /// <summary>Fails fast, before any training, when <paramref name="folder"/> cannot be created or written
    /// (read-only, a file in the way, no permission): creates it and writes and removes a probe file.</summary>
    public static void CheckWritable(string folder) =>
        CheckWritable(folder, path => new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose));

    internal static void CheckWritable(string folder, Func<string, Stream> createFile)
    {
        string probe = Path.Combine(folder, $".write-test.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(folder);
            using (var stream = createFile(probe)) stream.WriteByte(0);
            TryDelete(probe); // DeleteOnClose removed it already; a test's stream may not have
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(probe);
            throw new CheckpointException($"output folder '{folder}' is not writable: {e.Message.Split('\n')[0]}", e);
        }
    }

    static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the save already failed; report that */ }
    }

    void Validate(ParameterLayout layout)
    {
        if (Dictionary.Classes != Config.Classes)
            throw new ArgumentException($"dictionary has {Dictionary.Classes} classes with the blank, the model {Config.Classes}");
        if (Parameters.Length != layout.ParameterCount || Buffers.Length != layout.BufferCount)
            throw new ArgumentException($"expected {layout.ParameterCount} parameters and {layout.BufferCount} buffer values, got {Parameters.Length} and {Buffers.Length}");
        if ((AdamM is null) != (AdamV is null))
            throw new ArgumentException("Adam moments m and v come together");
        if (AdamM is not null && (AdamM.Length != layout.ParameterCount || AdamV!.Length != layout.ParameterCount))
            throw new ArgumentException($"Adam moments must have {layout.ParameterCount} values each");
    }

    IEnumerable<NamedTensor> ModelTensors(ParameterLayout layout) =>
        layout.Parameters.Select(p => new NamedTensor(p.Name, p.Shape, Parameters.AsMemory(p.Offset, p.Length)))
            .Concat(layout.Buffers.Select(b => new NamedTensor(b.Name, b.Shape, Buffers.AsMemory(b.Offset, b.Length))));

    IEnumerable<NamedTensor> OptimizerTensors(ParameterLayout layout) =>
        layout.Parameters.SelectMany(p => new[]
        {
            new NamedTensor(p.Name + ".adam_m", p.Shape, AdamM.AsMemory(p.Offset, p.Length)),
            new NamedTensor(p.Name + ".adam_v", p.Shape, AdamV.AsMemory(p.Offset, p.Length)),
        });

    /// <summary>
    /// Parameters for a new run that starts from this checkpoint (fine-tuning) as <paramref name="config"/>: this
    /// checkpoint's model, maybe with another class count. Every tensor is copied, except, with
    /// <paramref name="resetHead"/>, the classification head's, which are taken from <paramref name="fresh"/>
    /// (freshly initialized parameters of <paramref name="config"/>).
    /// </summary>
    public float[] StartingWeights(ModelConfig config, float[] fresh, bool resetHead)
    {
        if (config with { Classes = Config.Classes } != Config)
            throw new ArgumentException($"the model to train ({config.Describe()}) is not the checkpoint's ({Config.Describe()})");
        if (!resetHead && config.Classes != Config.Classes)
            throw new ArgumentException($"the checkpoint has {Config.Classes} classes, the model to train {config.Classes}: reset the head");
        var from = new ParameterLayout(Config);
        var to = new ParameterLayout(config);
        var weights = (float[])fresh.Clone();
        foreach (var p in to.Parameters)
            if (!(resetHead && p.Name.StartsWith("head.")))
                Parameters.AsSpan(from[p.Name].Offset, p.Length).CopyTo(weights.AsSpan(p.Offset, p.Length));
        return weights;
    }

    /// <summary>Loads and validates a checkpoint folder; the optimizer file is optional (absent: no moments).</summary>
    public static Checkpoint Load(string folder)
    {
        try { return LoadValidated(folder); }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException && e is not CheckpointException)
        {
            throw new CheckpointException($"cannot load checkpoint '{folder}': {e.Message}", e);
        }
    }

    static Checkpoint LoadValidated(string folder)
    {
        string metadataPath = Path.Combine(folder, MetadataFile);
        if (!File.Exists(metadataPath)) throw new InvalidDataException($"no {MetadataFile} in '{folder}'");
        var meta = ReadMetadata(metadataPath);
        var model = SafeTensors.Read(Path.Combine(folder, ModelFile));
        // Killed between its renames, a newer save has model.safetensors in place and the rest in its temp files.
        if (IdOf(model) is { } newer && newer != meta.CheckpointId && File.Exists(TempPath(folder, MetadataFile, newer)))
            meta = ReadMetadata(metadataPath = TempPath(folder, MetadataFile, newer));

        ModelConfig config;
        try { config = meta.Config.ToConfig(); _ = config.TimeSteps; }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException) { throw new InvalidDataException($"{metadataPath}: bad config ({e.Message})"); }
        CharDictionary dictionary;
        try { dictionary = CharDictionary.FromSymbols(meta.Dictionary); }
        catch (FormatException e) { throw new InvalidDataException($"{metadataPath}: bad dictionary ({e.Message})"); }
        if (dictionary.Classes != config.Classes)
            throw new InvalidDataException($"{metadataPath}: dictionary gives {dictionary.Classes} classes, config {config.Classes}");

        var layout = new ParameterLayout(config);
        CheckSameSave(model, meta);
        var parameters = new float[layout.ParameterCount];
        var buffers = new float[layout.BufferCount];
        ReadAll(model, layout.Parameters, parameters, "");
        ReadAll(model, layout.Buffers, buffers, "");
        CheckNoExtra(model, layout.Parameters.Count + layout.Buffers.Count);

        float[]? m = null, v = null;
        if (OptimizerOf(folder, meta) is { } optimizer)
        {
            CheckSameSave(optimizer, meta);
            m = new float[layout.ParameterCount];
            v = new float[layout.ParameterCount];
            ReadAll(optimizer, layout.Parameters, m, ".adam_m");
            ReadAll(optimizer, layout.Parameters, v, ".adam_v");
            CheckNoExtra(optimizer, 2 * layout.Parameters.Count);
        }

        return new Checkpoint
        {
            Config = config, Dictionary = dictionary, Parameters = parameters, Buffers = buffers, AdamM = m, AdamV = v,
            Step = meta.Step, Epoch = meta.Epoch, Rng = meta.Rng, Metrics = meta.Metrics ?? [],
        };
    }

    static MetadataJson ReadMetadata(string path)
    {
        MetadataJson meta;
        try
        {
            meta = JsonSerializer.Deserialize<MetadataJson>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path} is not valid checkpoint JSON ({e.Message})"); }
        if (meta.Format != Format || meta.Version != Version)
            throw new InvalidDataException($"{path} is format '{meta.Format}' version {meta.Version}, expected '{Format}' version {Version}");
        if (meta.Config is null || meta.Dictionary is null || meta.Rng is null)
            throw new InvalidDataException($"{path} lacks config, dictionary or rng");
        return meta;
    }

    /// <summary>The optimizer file of the save <paramref name="meta"/> describes: in place, or still in its temp
    /// file when the save was killed before renaming it; null when the save has none.</summary>
    static SafeTensorFile? OptimizerOf(string folder, MetadataJson meta)
    {
        if (meta.Optimizer == false) return null; // a file there is a stale one from an earlier save
        string path = Path.Combine(folder, OptimizerFile), temp = TempPath(folder, OptimizerFile, meta.CheckpointId);
        var inPlace = File.Exists(path) ? SafeTensors.Read(path) : null;
        if (inPlace is not null && IdOf(inPlace) == meta.CheckpointId) return inPlace;
        if (File.Exists(temp)) return SafeTensors.Read(temp);
        if (inPlace is null && meta.Optimizer == true) throw new InvalidDataException($"no {OptimizerFile} in '{folder}'");
        return inPlace; // another save's file: the caller names the mix-up
    }

    static string? IdOf(SafeTensorFile file) => file.Metadata.TryGetValue("checkpoint_id", out var id) ? id : null;

    static void ReadAll(SafeTensorFile file, IReadOnlyList<ParameterSpec> specs, float[] flat, string suffix)
    {
        foreach (var spec in specs) file.CopyTo(spec.Name + suffix, flat.AsSpan(spec.Offset, spec.Length), spec.Shape);
    }

    static void CheckNoExtra(SafeTensorFile file, int expected)
    {
        if (file.Tensors.Count != expected)
            throw new InvalidDataException($"{file.Source} holds {file.Tensors.Count} tensors, the model {expected} (another model's file?)");
    }

    static void CheckSameSave(SafeTensorFile file, MetadataJson meta)
    {
        if (!file.Metadata.TryGetValue("checkpoint_id", out var id) || id != meta.CheckpointId)
            throw new InvalidDataException($"{file.Source} is not from the same save as {MetadataFile} (interrupted save?)");
    }
}
