using Crnn.Kernels;
using ILGPU;
using Device = Crnn.Kernels.Device;

namespace Crnn.Engine;

/// <summary>
/// What inference reads besides the parameters. Every BatchNorm as a <see cref="ChannelNorm"/> (running mean,
/// scale γ/√(σ² + ε), β and β − μ·scale, computed in float64), which the convolutions apply with the
/// activation in their epilogue: one pass instead of three. Not folded into the weights (w·s), as ONNX Runtime
/// does: that put the imported en_number_mobile model's logits 5.4e-4 from float64 (rounding w·s per weight
/// where σ² is tiny), against 2.4e-5 for the epilogue. One device buffer, allocated with the model, so inference during training
/// allocates no device memory. Under the host policy also the 1×1 convolutions' and LSTMs' weights packed for
/// the host GEMM (host memory). All refreshed when the <see cref="ParameterStore.Version"/> has moved since
/// the last time.
/// </summary>
public sealed class InferenceWeights : IDisposable
{
    readonly ParameterStore _store;
    readonly bool _pack;
    readonly Tensor<float> _statistics;
    readonly Dictionary<string, (int Offset, int Channels)> _norms = [];
    readonly Dictionary<string, PackedOperand> _packed = [];
    readonly Dictionary<string, LstmInferenceWeights> _lstms = [];
    long _version = -1;

    public InferenceWeights(Device device, ParameterStore store)
    {
        _store = store;
        _pack = device.UsesHost;
        int offset = 0;
        // Every BatchNorm follows a convolution of the same name prefix.
        foreach (var spec in store.Layout.Buffers.Where(b => b.Name.EndsWith(".bn.running_mean", StringComparison.Ordinal)))
        {
            _norms[spec.Name[..^".bn.running_mean".Length]] = (offset, spec.Length);
            offset += 4 * spec.Length;
        }
        _statistics = device.Allocate(Math.Max(offset, 1));
    }

    /// <summary>The BatchNorm after convolution <paramref name="conv"/> (as of the last <see cref="Refresh"/>).</summary>
    public ChannelNorm this[string conv]
    {
        get
        {
            var (offset, channels) = _norms[conv];
            var v = _statistics.View;
            return new(v.SubView(offset, channels), v.SubView(offset + channels, channels), v.SubView(offset + 2 * channels, channels),
                v.SubView(offset + 3 * channels, channels));
        }
    }

    /// <summary>The packed weight of a 1×1 convolution (or of the head, "head.fc") under the host policy; null otherwise.</summary>
    public PackedOperand? Packed(string conv) => _packed.GetValueOrDefault(conv);

    /// <summary>The packed weights of LSTM layer <paramref name="layer"/> under the host policy; null otherwise.</summary>
    public LstmInferenceWeights? PackedLstm(string layer) => _lstms.GetValueOrDefault(layer);

    /// <summary>Computes everything again if the parameters or statistics changed since the last time.</summary>
    public void Refresh()
    {
        if (_version == _store.Version) return;
        var parameters = _store.Parameters.ToHost();
        var buffers = _store.Buffers.ToHost();
        var layout = _store.Layout;
        var statistics = new float[_statistics.Length];
        foreach (var (conv, (offset, channels)) in _norms)
        {
            int gamma = layout[$"{conv}.bn.weight"].Offset, beta = layout[$"{conv}.bn.bias"].Offset;
            int mean = layout[$"{conv}.bn.running_mean"].Offset, variance = layout[$"{conv}.bn.running_var"].Offset;
            for (int c = 0; c < channels; c++)
            {
                double scale = parameters[gamma + c] / Math.Sqrt(buffers[variance + c] + (double)BatchNorm.Epsilon);
                statistics[offset + c] = buffers[mean + c];
                statistics[offset + channels + c] = (float)scale;
                statistics[offset + 2 * channels + c] = parameters[beta + c];
                statistics[offset + 3 * channels + c] = (float)(parameters[beta + c] - buffers[mean + c] * scale);
            }
        }
        _statistics.CopyFrom(statistics);
        if (_pack) Pack(parameters);
        _version = _store.Version;
    }

    void Pack(float[] parameters)
    {
        var layout = _store.Layout;
        foreach (var conv in _norms.Keys)
            if (layout[$"{conv}.weight"] is { Shape: [var outChannels, var inChannels, 1, 1] } weight)
                _packed[conv] = PackedOperand.RowsAsA(parameters, weight.Offset, outChannels, inChannels);
        // The head's W [classes, 2H] as the GEMM's Wᵀ.
        if (layout["head.fc.weight"] is { Shape: [var classes, var features] } head)
            _packed["head.fc"] = PackedOperand.RowsAsTransposedB(parameters, head.Offset, classes, features);
        // An LSTM layer's block starts at its forward W_ih [4H, In].
        foreach (var spec in layout.Parameters.Where(p => p.Name.EndsWith(".forward.weight_ih", StringComparison.Ordinal)))
            _lstms[spec.Name[..^".forward.weight_ih".Length]] = Lstm.PackForInference(parameters, spec.Offset, spec.Shape[1], spec.Shape[0] / 4);
    }

    public void Dispose() => _statistics.Dispose();
}
