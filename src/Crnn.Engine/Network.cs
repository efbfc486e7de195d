using Crnn.Engine.Layers;
using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine;

/// <summary>
/// The seed model's layers for one batch size, in MODEL.md's order: conv1, the residual units, conv2,
/// max-pool + Im2Seq, two BiLSTM layers, the linear head. Backward is the same list reversed. All activation
/// buffers are allocated here, once; a forward or backward pass allocates nothing. A network built for
/// inference only (not <see cref="Training"/>) allocates no buffer of the training forward or the backward
/// pass: only each layer's output and what the inference kernels need; under the host policy, with an image per core,
/// it runs its batch in chunks on networks of a few images instead (<see cref="ImageChunks"/>).
/// </summary>
public sealed class Network : IDisposable
{
    readonly List<Layer> _layers = [];
    readonly ActivationSlots? _slots;
    readonly ImageChunks? _chunks;

    public int Batch { get; }
    public int Width { get; }
    public int Steps { get; }
    public int Classes { get; }
    public bool Training { get; }

    public Network(KernelSet kernels, ParameterStore store, InferenceWeights inference, ModelConfig config, int batch, bool training = true)
        : this(kernels, store, inference, config, batch, training, chunked: !training && ImageChunks.Suit(kernels.Device, batch)) { }

    /// <summary>A <paramref name="chunked"/> network holds no layers of its own: its batch runs chunk by chunk on
    /// networks of a few images (<see cref="ImageChunks"/>).</summary>
    Network(KernelSet kernels, ParameterStore store, InferenceWeights inference, ModelConfig config, int batch, bool training, bool chunked)
    {
        Batch = batch;
        Training = training;
        Width = config.Width;
        Classes = config.Classes;
        if (chunked)
        {
            _chunks = new ImageChunks(batch, config, chunk => new Network(kernels, store, inference, config, chunk, training: false, chunked: false),
                kernels.Device);
            Steps = _chunks.Steps;
            return;
        }
        var (h, w) = config.StemSize;
        var units = config.Units;
        // Inference only: the backbone's outputs in three shared buffers (see ActivationSlots).
        _slots = training ? null : new ActivationSlots(kernels.Device, LargestActivation(config, batch));
        ArrayView<float> Slot(long length) => _slots?.Other(length, _layers.Count > 0 ? _layers[^1].Output : default) ?? default;
        var conv1 = ConvShape.Dense(batch, 3, config.Height, config.Width, config.StemChannels, 3, 2, 2, 1);
        _layers.Add(new ConvBnAct(kernels, store, inference, "backbone.conv1", ConvKind.Dense,
            conv1, Activation.HardSwish, inputGradient: false, training, Slot(conv1.OutputLength)));
        for (int i = 0; i < units.Count; i++)
        {
            var unit = new ResidualUnit(kernels, store, inference, $"backbone.units.{i}", units[i], batch, h, w, training, _slots, _layers[^1].Output);
            (h, w) = (unit.OutHeight, unit.OutWidth);
            _layers.Add(unit);
        }
        var conv2 = ConvShape.Dense(batch, units[^1].Out, h, w, config.HeadChannels, 1, 1, 1, 0);
        _layers.Add(new ConvBnAct(kernels, store, inference, "backbone.conv2", ConvKind.Pointwise,
            conv2, Activation.HardSwish, inputGradient: true, training, Slot(conv2.OutputLength)));
        var pool = new MaxPoolIm2Seq(kernels, batch, config.HeadChannels, h, w, training);
        _layers.Add(pool);
        Steps = pool.Steps;
        _layers.Add(new BiLstm(kernels, store, inference, "neck.lstm.0", batch, Steps, config.HeadChannels, config.Hidden, training));
        _layers.Add(new BiLstm(kernels, store, inference, "neck.lstm.1", batch, Steps, 2 * config.Hidden, config.Hidden, training));
        _layers.Add(new LinearHead(kernels, store, inference, batch * Steps, 2 * config.Hidden, config.Classes, training));
    }

    /// <summary>Elements of the backbone's largest output: a residual unit's expansion at its input size, the stem's or conv2's.</summary>
    static long LargestActivation(ModelConfig config, int batch)
    {
        var (h, w) = config.StemSize;
        long largest = (long)batch * config.StemChannels * h * w;
        foreach (var u in config.Units)
        {
            largest = Math.Max(largest, (long)batch * Math.Max(u.Expand, u.Out) * h * w);
            var d = ConvShape.Depthwise(batch, u.Expand, h, w, u.Kernel, u.StrideH, u.StrideW);
            (h, w) = (d.OutHeight, d.OutWidth);
        }
        return Math.Max(largest, (long)batch * config.HeadChannels * h * w);
    }

    /// <summary>Attaches a profiler to every layer (null detaches it).</summary>
    public void Profile(Profiler? profiler)
    {
        _chunks?.Profile(profiler);
        foreach (var layer in _layers)
        {
            layer.Profiler = profiler;
            if (layer is ResidualUnit unit)
                foreach (var child in unit.Children) child.Profiler = profiler;
        }
    }

    /// <summary>Logits [B, T, C] of the last forward.</summary>
    public ArrayView<float> Logits => _chunks?.Logits ?? _layers[^1].Output;

    public ArrayView<float> Forward(ArrayView<float> images, bool training)
    {
        if (training && !Training) throw new InvalidOperationException("this network was built for inference only");
        if (_chunks != null) return _chunks.Forward(images);
        var x = images;
        foreach (var layer in _layers)
        {
            layer.Forward(x, training);
            x = layer.Output;
        }
        return x;
    }

    /// <summary>Back-propagates d loss / d logits, writing every parameter gradient.</summary>
    public void Backward(ArrayView<float> logitsGradient)
    {
        if (!Training) throw new InvalidOperationException("this network was built for inference only");
        var d = logitsGradient;
        for (int i = _layers.Count - 1; i >= 0; i--) d = _layers[i].Backward(d);
    }

    public void Dispose()
    {
        foreach (var layer in _layers) layer.Dispose();
        _slots?.Dispose();
        _chunks?.Dispose();
    }
}
