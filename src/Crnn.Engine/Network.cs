using Crnn.Engine.Layers;
using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine;

/// <summary>
/// The seed model's layers for one batch size, in MODEL.md's order: conv1, the residual units, conv2,
/// max-pool + Im2Seq, two BiLSTM layers, the linear head. Backward is the same list reversed. All activation
/// buffers are allocated here, once; a forward or backward pass allocates nothing.
/// </summary>
public sealed class Network : IDisposable
{
    readonly List<Layer> _layers = [];

    public int Batch { get; }
    public int Width { get; }
    public int Steps { get; }
    public int Classes { get; }

    public Network(KernelSet kernels, ParameterStore store, ModelConfig config, int batch)
    {
        Batch = batch;
        Width = config.Width;
        Classes = config.Classes;
        var (h, w) = config.StemSize;
        _layers.Add(new ConvBnAct(kernels, store, "backbone.conv1", ConvKind.Dense,
            ConvShape.Dense(batch, 3, config.Height, config.Width, config.StemChannels, 3, 2, 2, 1), Activation.HardSwish, inputGradient: false));
        var units = config.Units;
        for (int i = 0; i < units.Count; i++)
        {
            var unit = new ResidualUnit(kernels, store, $"backbone.units.{i}", units[i], batch, h, w);
            (h, w) = (unit.OutHeight, unit.OutWidth);
            _layers.Add(unit);
        }
        _layers.Add(new ConvBnAct(kernels, store, "backbone.conv2", ConvKind.Pointwise,
            ConvShape.Dense(batch, units[^1].Out, h, w, config.HeadChannels, 1, 1, 1, 0), Activation.HardSwish, inputGradient: true));
        var pool = new MaxPoolIm2Seq(kernels, batch, config.HeadChannels, h, w);
        _layers.Add(pool);
        Steps = pool.Steps;
        _layers.Add(new BiLstm(kernels, store, "neck.lstm.0", batch, Steps, config.HeadChannels, config.Hidden));
        _layers.Add(new BiLstm(kernels, store, "neck.lstm.1", batch, Steps, 2 * config.Hidden, config.Hidden));
        _layers.Add(new LinearHead(kernels, store, batch * Steps, 2 * config.Hidden, config.Classes));
    }

    /// <summary>Attaches a profiler to every layer (null detaches it).</summary>
    public void Profile(Profiler? profiler)
    {
        foreach (var layer in _layers)
        {
            layer.Profiler = profiler;
            if (layer is ResidualUnit unit)
                foreach (var child in unit.Children) child.Profiler = profiler;
        }
    }

    /// <summary>Logits [B, T, C] of the last forward.</summary>
    public ArrayView<float> Logits => _layers[^1].Output;

    public ArrayView<float> Forward(ArrayView<float> images, bool training)
    {
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
        var d = logitsGradient;
        for (int i = _layers.Count - 1; i >= 0; i--) d = _layers[i].Backward(d);
    }

    public void Dispose()
    {
        foreach (var layer in _layers) layer.Dispose();
    }
}
