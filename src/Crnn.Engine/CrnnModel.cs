using Crnn.Kernels;
using ILGPU;
using ILGPU.Runtime;
using Device = Crnn.Kernels.Device;

namespace Crnn.Engine;

/// <summary>
/// The model on one device: configuration, parameters (one buffer), the layers for the current batch size,
/// and CTC loss. Host arrays cross to the device only here: labels in (images come on the device), decoded
/// text out; training's per-sample losses stay on the device for the trainer's one read-back.
/// </summary>
public sealed class CrnnModel : IDisposable
{
    Network? _network;
    CtcBuffers? _ctc;
    DecodeBuffers? _decode;
    Profiler? _profiler;

    public ModelConfig Config { get; }
    public ParameterLayout Layout { get; }
    public KernelSet Kernels { get; }
    public ParameterStore Store { get; }
    /// <summary>BatchNorm's running statistics as the epilogues read them and the host-packed weights, which evaluation-mode forwards use.</summary>
    public InferenceWeights Inference { get; }
    public Device Device => Kernels.Device;
    /// <summary>Time steps of the current network (its input width's), or of the configured width before any.</summary>
    public int Steps => _network?.Steps ?? Config.TimeSteps;

    /// <summary>Times every layer family of forward, CTC and backward when set (measurement only: it synchronizes).</summary>
    public Profiler? Profiler
    {
        get => _profiler;
        set
        {
            _profiler = value;
            _network?.Profile(value);
        }
    }

    public CrnnModel(Device device, ModelConfig config)
    {
        Config = config;
        _ = config.TimeSteps; // an input size the backbone cannot take fails here, with its reason
        Layout = new ParameterLayout(config);
        Kernels = new KernelSet(device);
        Store = new ParameterStore(device, Layout);
        Inference = new InferenceWeights(device, Store);
    }

    /// <summary>Fresh weights as MODEL.md prescribes, reproducible from the seed.</summary>
    public void Initialize(int seed)
    {
        var (parameters, buffers) = Layout.Initialize(seed);
        Load(parameters, buffers);
    }

    public void Load(float[] parameters, float[] buffers)
    {
        Store.Parameters.CopyFrom(parameters);
        Store.Buffers.CopyFrom(buffers);
        Store.Changed();
    }

    public (float[] Parameters, float[] Buffers) Save() => (Store.Parameters.ToHost(), Store.Buffers.ToHost());

    /// <summary>The layers for <paramref name="batch"/> images <paramref name="width"/> pixels wide (default: the
    /// configured width); rebuilt (allocating) only when the batch size or the width changes, or when training
    /// needs a network that was built for inference only. A training network also serves inference (validation
    /// runs on its buffers).</summary>
    public Network NetworkFor(int batch, int? width = null, bool training = true)
    {
        if (batch < 1) throw new ArgumentException($"batch size must be at least 1, got {batch}");
        int w = width ?? Config.Width;
        if (_network?.Batch != batch || _network.Width != w || (training && !_network.Training))
        {
            _network?.Dispose();
            _ctc?.Dispose();
            _decode?.Dispose();
            (_network, _ctc, _decode) = (null, null, null); // a failed build (out of device memory) leaves nothing disposed behind
            var network = new Network(Kernels, Store, Inference, Config with { Width = w }, batch, training);
            network.Profile(_profiler);
            // CTC's label, loss and gradient buffers only for a network that trains.
            if (training) _ctc = new CtcBuffers(Kernels, batch, network.Steps, Config.Classes);
            _decode = new DecodeBuffers(Kernels, batch, network.Steps);
            _network = network;
        }
        return _network;
    }

    /// <summary>Forward pass on a batch already on the device ([B, 3, H, W], W the configured width unless given);
    /// returns logits [B, T, C]. Evaluation mode (not <paramref name="training"/>) runs the inference path:
    /// BatchNorm and the activation in the convolutions' epilogues, no buffers kept for a backward pass.</summary>
    public ArrayView<float> Forward(ArrayView<float> images, int batch, bool training, int? width = null)
    {
        var network = NetworkFor(batch, width, training);
        if (training) Store.Changed(); // the BatchNorm running statistics move
        else Inference.Refresh();
        return network.Forward(images, training);
    }

    /// <summary>
    /// One forward and backward pass in training mode: every parameter gradient (of the mean-over-batch loss) is
    /// written into <see cref="Store"/>; returns the per-sample CTC losses, left on the device (valid until the
    /// next pass) so that nothing is read back here (the trainer reads their sum with <see cref="GradientNorm.Read"/>).
    /// </summary>
    public ArrayView<float> ForwardBackward(ArrayView<float> images, int[][] labels)
    {
        int batch = labels.Length;
        var network = NetworkFor(batch);
        SetPhase("forward");
        Store.Changed(); // the BatchNorm running statistics move
        var logits = network.Forward(images, training: true);
        var ctc = _ctc!;
        using (_profiler?.Measure("ctc") ?? default)
        {
            ctc.Upload(labels);
            Kernels.Ctc.LossAndGradient(logits, ctc.LabelView, ctc.Lengths, ctc.Losses.View, ctc.Gradient.View,
                ctc.Workspace, blank: 0, zeroInfinity: true, gradientScale: 1f / batch); // loss = mean over the batch
        }
        SetPhase("backward");
        network.Backward(ctc.Gradient.View);
        SetPhase("");
        return ctc.Losses.View;
    }

    void SetPhase(string phase)
    {
        if (_profiler != null) _profiler.Phase = phase;
    }

    /// <summary>Greedy decoding of the last forward's logits: class ids per sample and confidences.</summary>
    public (int[][] Ids, float[] Confidences) DecodeLast()
    {
        var network = _network ?? throw new InvalidOperationException("no forward pass has run yet");
        var b = _decode!;
        Kernels.Decoder.Decode(network.Logits, network.Batch, Steps, Config.Classes, b.DecodedIds.View, b.DecodedLengths.View, b.Confidences.View);
        var flat = b.DecodedIds.ToHost();
        var lengths = b.DecodedLengths.ToHost();
        var ids = new int[network.Batch][];
        for (int i = 0; i < network.Batch; i++) ids[i] = flat.AsSpan(i * Steps, lengths[i]).ToArray();
        return (ids, b.Confidences.ToHost());
    }

    public void Dispose()
    {
        _network?.Dispose();
        _ctc?.Dispose();
        _decode?.Dispose();
        Inference.Dispose();
        Store.Dispose();
        Kernels.Dispose();
    }

    /// <summary>The greedy decoder's device buffers for one batch size.</summary>
    sealed class DecodeBuffers : IDisposable
    {
        public DecodeBuffers(KernelSet kernels, int batch, int steps)
        {
            DecodedIds = kernels.Device.Allocate<int>(batch * steps);
            DecodedLengths = kernels.Device.Allocate<int>(batch);
            Confidences = kernels.Device.Allocate(batch);
            kernels.Decoder.Reserve(batch, steps);
        }

        public Tensor<int> DecodedIds { get; }
        public Tensor<int> DecodedLengths { get; }
        public Tensor<float> Confidences { get; }

        public void Dispose()
        {
            DecodedIds.Dispose();
            DecodedLengths.Dispose();
            Confidences.Dispose();
        }
    }

    /// <summary>CTC's device buffers for one training batch size: labels (staged), losses, gradient, workspace.</summary>
    sealed class CtcBuffers : IDisposable
    {
        readonly int _batch, _steps;
        // Lengths then the concatenated labels, staged on the host and on the device alike: one upload.
        readonly PageLockedArray1D<int> _staging;
        readonly Tensor<int> _labelData;
        int _labelCount;

        public CtcBuffers(KernelSet kernels, int batch, int steps, int classes)
        {
            (_batch, _steps) = (batch, steps);
            _staging = kernels.Device.Accelerator.AllocatePageLocked1D<int>(batch + batch * steps);
            _labelData = kernels.Device.Allocate<int>(batch + batch * steps);
            Losses = kernels.Device.Allocate(batch);
            Gradient = kernels.Device.Allocate(batch, steps, classes);
            Workspace = kernels.Ctc.CreateWorkspace(batch, steps, classes);
        }

        public ArrayView<int> Lengths => _labelData.View.SubView(0, _batch);
        public Tensor<float> Losses { get; }
        public Tensor<float> Gradient { get; }
        public CtcWorkspace Workspace { get; }
        public ArrayView<int> LabelView => _labelData.View.SubView(_batch, Math.Max(_labelCount, 1));

        public void Upload(int[][] labels)
        {
            long total = labels.Sum(l => (long)l.Length);
            if (total > (long)_batch * _steps)
                throw new ArgumentException($"labels total {total} symbols; at most {_steps} per sample fit {_steps} time steps");
            var staged = _staging.Span;
            int at = _batch;
            for (int i = 0; i < labels.Length; i++)
            {
                staged[i] = labels[i].Length;
                labels[i].AsSpan().CopyTo(staged[at..]);
                at += labels[i].Length;
            }
            _labelCount = at - _batch;
            // From the pinned array itself: a copy from the staging buffer's own view needs a CPU stream, which OpenCL
            // lacks; CUDA still sees registered (page-locked) host memory.
            _labelData.View.SubView(0, at).CopyFromCPU(new ReadOnlySpan<int>(_staging.GetArray(), 0, at));
        }

        public void Dispose()
        {
            _staging.Dispose();
            _labelData.Dispose();
            Losses.Dispose();
            Gradient.Dispose();
            Workspace.Dispose();
        }
    }
}
