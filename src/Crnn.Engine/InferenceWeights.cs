using Crnn.Kernels;
using ILGPU;
using Device = Crnn.Kernels.Device;

namespace Crnn.Engine;

/// <summary>
/// What inference reads besides the parameters. Every BatchNorm as a per-channel scale s = γ/√(σ² + ε) and
/// shift β − μ·s (running statistics, computed in float64), which the convolutions apply in their epilogue
/// with the activation: one pass instead of three. (Folding s into the weights instead, as ONNX Runtime does,
/// put the imported en_number_mobile model's logits 5.4e-4 from float64 against 8.9e-5 for the scale in the
/// epilogue: rounding w·s per weight adds error where σ² is tiny.) One device buffer, allocated with the model,
/// so inference during training allocates no device memory. Under the host policy also the 1×1 convolutions'
/// and LSTMs' weights packed for the host GEMM (host memory). All refreshed when the
/// <see cref="ParameterStore.Version"/> has moved since the last time.
/// </summary>
public sealed class InferenceWeights : IDisposable
{
    readonly ParameterStore _store;
    readonly bool _pack;
    readonly Tensor<float> _affine;
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
            offset += 2 * spec.Length;
        }
        _affine = device.Allocate(Math.Max(offset, 1));
    }

    /// <summary>The BatchNorm after convolution <paramref name="conv"/> as scale and shift (as of the last <see cref="Refresh"/>).</summary>
    public (ArrayView<float> Scale, ArrayView<float> Shift) this[string conv]
    {
        get
        {
            var (offset, channels) = _norms[conv];
            return (_affine.View.SubView(offset, channels), _affine.View.SubView(offset + channels, channels));
        }
    }

    /// <summary>The packed weight of a 1×1 convolution under the host policy; null otherwise.</summary>
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
        var affine = new float[_affine.Length];
        foreach (var (conv, (offset, channels)) in _norms)
        {
            int gamma = layout[$"{conv}.bn.weight"].Offset, beta = layout[$"{conv}.bn.bias"].Offset;
            int mean = layout[$"{conv}.bn.running_mean"].Offset, variance = layout[$"{conv}.bn.running_var"].Offset;
            for (int c = 0; c < channels; c++)
            {
                double scale = parameters[gamma + c] / Math.Sqrt(buffers[variance + c] + (double)BatchNorm.Epsilon);
                affine[offset + c] = (float)scale;
                affine[offset + channels + c] = (float)(parameters[beta + c] - buffers[mean + c] * scale);
            }
        }
        _affine.CopyFrom(affine);
        if (_pack) Pack(parameters);
        _version = _store.Version;
    }

    void Pack(float[] parameters)
    {
        var layout = _store.Layout;
        foreach (var conv in _norms.Keys)
            if (layout[$"{conv}.weight"] is { Shape: [var outChannels, var inChannels, 1, 1] } weight)
                _packed[conv] = PackedOperand.RowsAsA(parameters, weight.Offset, outChannels, inChannels);
        // An LSTM layer's block starts at its forward W_ih [4H, In].
        foreach (var spec in layout.Parameters.Where(p => p.Name.EndsWith(".forward.weight_ih", StringComparison.Ordinal)))
            _lstms[spec.Name[..^".forward.weight_ih".Length]] = Lstm.PackForInference(parameters, spec.Offset, spec.Shape[1], spec.Shape[0] / 4);
    }

    public void Dispose() => _affine.Dispose();
}
