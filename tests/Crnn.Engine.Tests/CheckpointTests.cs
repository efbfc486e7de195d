using Xunit;

namespace Crnn.Engine.Tests;

public sealed class CheckpointTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("crnn-ckpt-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A checkpoint of a narrow model (fast to write and sync); the round trip uses the seed model.</summary>
    static Checkpoint Make(int seed, bool withOptimizer = true, ModelConfig? config = null)
    {
        config ??= new ModelConfig(Scale: 0.35, Hidden: 8);
        var layout = new ParameterLayout(config);
        var (parameters, buffers) = layout.Initialize(seed);
        var rng = new Random(seed);
        buffers[5] = float.NaN; // any bit pattern must survive
        float[] Moments() => [.. Enumerable.Range(0, layout.ParameterCount).Select(_ => rng.NextSingle())];
        return new Checkpoint
        {
            Config = config, Dictionary = CharDictionary.Default, Parameters = parameters, Buffers = buffers,
            AdamM = withOptimizer ? Moments() : null, AdamV = withOptimizer ? Moments() : null,
            Step = 1000 + seed, Epoch = 2, Rng = new RngState(seed, 256_000),
            Metrics = new Dictionary<string, double> { ["loss"] = 1.25, ["accuracy"] = 0.5, ["best"] = double.NaN },
        };
    }

    static Dictionary<string, byte[]> Snapshot(string dir) =>
        Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    [Fact]
    public void RoundTripIsBitExact()
    {
        var saved = Make(1, config: new ModelConfig());
        saved.Save(_dir);
        Assert.Equal([Checkpoint.MetadataFile, Checkpoint.ModelFile, Checkpoint.OptimizerFile], Directory.GetFiles(_dir).Select(Path.GetFileName).Order());
        var loaded = Checkpoint.Load(_dir);
        Assert.Equal(saved.Config, loaded.Config);
        Assert.Equal(saved.Dictionary.Symbols, loaded.Dictionary.Symbols);
        Assert.Equal(Bits(saved.Parameters), Bits(loaded.Parameters));
        Assert.Equal(Bits(saved.Buffers), Bits(loaded.Buffers));
        Assert.Equal(Bits(saved.AdamM!), Bits(loaded.AdamM!));
        Assert.Equal(Bits(saved.AdamV!), Bits(loaded.AdamV!));
        Assert.Equal(1001, loaded.Step);
        Assert.Equal(2, loaded.Epoch);
        Assert.Equal(new RngState(1, 256_000), loaded.Rng);
        Assert.Equal(1.25, loaded.Metrics["loss"]);
        Assert.True(double.IsNaN(loaded.Metrics["best"]));

        // Tensors carry the layout's names and shapes, so other tools can read them.
        var model = SafeTensors.Read(Path.Combine(_dir, Checkpoint.ModelFile));
        Assert.Equal([37, 192], model.Tensors["head.fc.weight"].Shape);
        Assert.True(model.Tensors.ContainsKey("backbone.conv2.bn.running_var"));
        var optimizer = SafeTensors.Read(Path.Combine(_dir, Checkpoint.OptimizerFile));
        Assert.Equal("1001", optimizer.Metadata["step"]);
        Assert.True(optimizer.Tensors.ContainsKey("neck.lstm.1.reverse.weight_hh.adam_v"));
    }

    static int[] Bits(float[] values) => [.. values.Select(BitConverter.SingleToInt32Bits)];

    [Fact]
    public void WeightsOnlyCheckpointDropsAStaleOptimizerFile()
    {
        Make(1).Save(_dir);
        Make(2, withOptimizer: false).Save(_dir);
        Assert.False(File.Exists(Path.Combine(_dir, Checkpoint.OptimizerFile)));
        var loaded = Checkpoint.Load(_dir);
        Assert.Null(loaded.AdamM);
        Assert.Equal(1002, loaded.Step);
    }

    [Theory]
    [InlineData(Checkpoint.ModelFile, 1000)]
    [InlineData(Checkpoint.OptimizerFile, 100_000)]
    [InlineData(Checkpoint.MetadataFile, 10)]
    public void FailureMidWriteLeavesThePreviousCheckpointUnchanged(string failingFile, long bytesBeforeFailure)
    {
        Make(1).Save(_dir);
        var before = Snapshot(_dir);
        Stream DiskFullOn(string path) => Path.GetFileName(path).StartsWith("." + failingFile)
            ? new FailingStream(new FileStream(path, FileMode.CreateNew), bytesBeforeFailure)
            : new FileStream(path, FileMode.CreateNew);
        var e = Assert.Throws<CheckpointException>(() => Make(2).Save(_dir, DiskFullOn));
        Assert.Contains("No space left on device", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        var after = Snapshot(_dir);
        Assert.Equal(before.Keys.Order(), after.Keys.Order()); // no temp files left behind
        foreach (var (name, bytes) in before) Assert.Equal(bytes, after[name]);
        Assert.Equal(1001, Checkpoint.Load(_dir).Step);
    }

    [Fact]
    public void UnwritableFolderIsAOneLineError()
    {
        string file = Path.Combine(_dir, "a-file");
        File.WriteAllText(file, "");
        var e = Assert.Throws<CheckpointException>(() => Make(1).Save(Path.Combine(file, "ckpt")));
        Assert.Contains("cannot save checkpoint", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void MissingTensorWrongShapeAndTruncationAreNamed()
    {
        Make(1).Save(_dir);
        string modelPath = Path.Combine(_dir, Checkpoint.ModelFile);
        var original = File.ReadAllBytes(modelPath);
        var file = SafeTensors.Parse(original);
        var tensors = file.Tensors.Values.OrderBy(t => t.Begin).Select(t => new NamedTensor(t.Name, t.Shape, file.Get(t.Name))).ToList();
        void Rewrite(IEnumerable<NamedTensor> list)
        {
            using var stream = File.Create(modelPath);
            SafeTensors.Write(stream, list, file.Metadata);
        }

        Rewrite(tensors.Where(t => t.Name != "head.fc.bias"));
        Assert.Contains("missing tensor 'head.fc.bias'", Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir)).Message);

        Rewrite(tensors.Select(t => t.Name == "head.fc.weight" ? t with { Shape = [16, 37] } : t));
        Assert.Contains("[16, 37], expected [37, 16]", Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir)).Message);

        Rewrite([.. tensors, new NamedTensor("extra", [1], new float[1])]);
        Assert.Contains("tensors", Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir)).Message);

        File.WriteAllBytes(modelPath, original[..(original.Length / 2)]);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir));
        Assert.Contains("truncated", e.Message);
        Assert.Contains(Checkpoint.ModelFile, e.Message);
    }

    [Fact]
    public void FilesFromDifferentSavesAreDetected()
    {
        string other = Path.Combine(_dir, "other");
        string main = Path.Combine(_dir, "main");
        Make(1).Save(main);
        Make(2).Save(other);
        File.Copy(Path.Combine(other, Checkpoint.OptimizerFile), Path.Combine(main, Checkpoint.OptimizerFile), overwrite: true);
        Assert.Contains("same save", Assert.Throws<CheckpointException>(() => Checkpoint.Load(main)).Message);
    }

    /// <summary>A save stopped after renaming <paramref name="renamedFiles"/> of its files (as a kill would stop it):
    /// the folder loads as that newer save, whole, from its temp files; the next save leaves no temp file.</summary>
    [Theory]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(1, false)]
    public void ASaveKilledBetweenItsRenamesLoadsAsTheNewerSave(int renamedFiles, bool withOptimizer)
    {
        Make(1).Save(_dir);
        var newer = Make(2, withOptimizer);
        int renames = 0;
        var e = Assert.Throws<CheckpointException>(() => newer.Save(_dir, path => new FileStream(path, FileMode.CreateNew),
            beforeRename: _ => { if (renames++ == renamedFiles) throw new IOException("killed"); }));
        Assert.Contains("killed", e.Message);
        Assert.NotEmpty(Directory.GetFiles(_dir, ".*.tmp")); // a torn folder, not a finished save

        var loaded = Checkpoint.Load(_dir);
        Assert.Equal(newer.Step, loaded.Step);
        Assert.Equal(Bits(newer.Parameters), Bits(loaded.Parameters));
        Assert.Equal(Bits(newer.Buffers), Bits(loaded.Buffers));
        Assert.Equal(newer.AdamM, loaded.AdamM);
        Assert.Equal(newer.AdamV, loaded.AdamV);

        Make(3).Save(_dir);
        Assert.Equal(1003, Checkpoint.Load(_dir).Step);
        Assert.Empty(Directory.GetFiles(_dir, ".*"));
    }

    [Fact]
    public void ASaveKilledBeforeItsFirstRenameLeavesTheOlderSave()
    {
        Make(1).Save(_dir);
        Assert.Throws<CheckpointException>(() => Make(2).Save(_dir, path => new FileStream(path, FileMode.CreateNew),
            beforeRename: _ => throw new IOException("killed")));
        Assert.Equal(1001, Checkpoint.Load(_dir).Step);
    }

    [Fact]
    public void BadMetadataIsRejected()
    {
        Assert.Contains("no model.json", Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir)).Message);
        Make(1).Save(_dir);
        string json = Path.Combine(_dir, Checkpoint.MetadataFile);
        File.WriteAllText(json, File.ReadAllText(json).Replace("\"classes\": 37", "\"classes\": 38"));
        Assert.Contains("classes", Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir)).Message);
        File.WriteAllText(json, "{ not json");
        Assert.Contains("not valid", Assert.Throws<CheckpointException>(() => Checkpoint.Load(_dir)).Message);
    }

    [Fact]
    public void SaveRejectsInconsistentState()
    {
        var good = Make(1);
        Assert.Throws<ArgumentException>(() => new Checkpoint
        {
            Config = good.Config with { Classes = 40 }, Dictionary = good.Dictionary, Parameters = good.Parameters, Buffers = good.Buffers,
        }.Save(_dir));
        Assert.Throws<ArgumentException>(() => new Checkpoint
        {
            Config = good.Config, Dictionary = good.Dictionary, Parameters = good.Parameters, Buffers = good.Buffers, AdamM = good.AdamM,
        }.Save(_dir));
        Assert.Empty(Directory.GetFiles(_dir));
    }

    /// <summary>A stream that fails like a full disk after a number of bytes.</summary>
    sealed class FailingStream(Stream inner, long limit) : Stream
    {
        long _written;
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > limit) throw new IOException("No space left on device");
            inner.Write(buffer);
            _written += buffer.Length;
        }
        public override void WriteByte(byte value) => Write([value]);
        public override void Flush() => inner.Flush();
        protected override void Dispose(bool disposing) { if (disposing) inner.Dispose(); base.Dispose(disposing); }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
