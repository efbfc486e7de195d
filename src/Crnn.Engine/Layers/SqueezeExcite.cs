using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine.Layers;

/// <summary>
/// Squeeze-and-excite: global average pool → 1×1 conv with bias → ReLU → 1×1 conv with bias →
/// hardsigmoid → channel-wise multiply of the input. Under the gpu policy the fused <see cref="Excitation"/>
/// kernels (one launch forward, two backward); under host, host operations.
/// </summary>
public sealed class SqueezeExcite : Layer
{
    readonly ParameterStore _store;
    readonly string _name;
    readonly int _batch, _channels, _squeeze, _spatial;
    readonly Tensor<float> _pooled, _squeezed, _relu, _excited, _gate;
    readonly ArrayView<float> _output;
    readonly Tensor<float> _dGate, _dRelu, _dPooled, _dInput;
    readonly bool _fused;
    ArrayView<float> _input;

    readonly bool _gatesOnly;

    /// <param name="gatesOnly">Inference only, host policy: compute the gates (<see cref="Gates"/>) and leave the input
    /// unscaled (<see cref="Output"/> is the input): the next 1×1 convolution scales it as it reads it
    /// (<see cref="PointwiseConv.ScalesInput"/>), which saves writing and reading the scaled map.</param>
    public SqueezeExcite(KernelSet kernels, ParameterStore store, string name, int batch, int channels, int squeeze, int spatial, bool training,
        ArrayView<float> output = default, bool gatesOnly = false) : base(kernels, training)
    {
        (_store, _name, _batch, _channels, _squeeze, _spatial) = (store, name, batch, channels, squeeze, spatial);
        if (gatesOnly && (training || !kernels.Device.UsesHost)) throw new ArgumentException($"{name}: gates alone are for host inference");
        _gatesOnly = gatesOnly;
        _fused = !kernels.Device.UsesHost;
        _pooled = Allocate(batch, channels);
        // The fused kernel writes every stage, in inference too (vectors of one value per image and channel).
        _squeezed = _fused ? Allocate(batch, squeeze) : ForTraining(batch, squeeze);
        _relu = Allocate(batch, squeeze);
        _excited = _fused ? Allocate(batch, channels) : ForTraining(batch, channels);
        _gate = Allocate(batch, channels);
        // A shared slot (inference only), or none when the next convolution scales the input itself.
        _output = gatesOnly ? default : output.IsValid && !training ? output : Allocate(batch, channels, spatial).View;
        _dGate = ForTraining(batch, channels);
        _dRelu = ForTraining(batch, squeeze);
        _dPooled = ForTraining(batch, channels);
        _dInput = ForTraining(batch, channels, spatial);
    }

    public override ArrayView<float> Output => _gatesOnly ? _input : _output;

    /// <summary>The gates [B, C] of the last forward, for the next convolution to apply (<c>gatesOnly</c>); otherwise not valid.</summary>
    public ArrayView<float> Gates => _gatesOnly ? _gate.View : default;

    /// <summary>The two SE convolutions run on pooled [B, C, 1, 1] maps: one position each.</summary>
    PointwiseShape Squeeze => new(_batch, _channels, _squeeze, 1);
    PointwiseShape Excite => new(_batch, _squeeze, _channels, 1);
    ExcitationShape Shape => new() { Batch = _batch, Channels = _channels, Squeeze = _squeeze, Spatial = _spatial };

    public override void Forward(ArrayView<float> input, bool training)
    {
        using var section = Time("squeeze-excite");
        _input = input;
        if (!training && K.Device.UsesHost)
        {
            // Evaluation on the host: the whole block in one pass per image (or only the gates).
            K.ChannelScale.SqueezeExcite(input, W("conv1"), B("conv1"), W("conv2"), B("conv2"), _output, _batch, _channels, _squeeze, _spatial,
                _gatesOnly ? _gate.View : default);
            return;
        }
        if (_fused)
        {
            K.Excitation.Forward(input, W("conv1"), B("conv1"), W("conv2"), B("conv2"), _pooled.View, _squeezed.View, _relu.View,
                _excited.View, _gate.View, _output, Shape);
            return;
        }
        K.Pooling.GlobalAveragePoolForward(input, _pooled.View, _batch, _channels, _spatial);
        K.PointwiseConv.Forward(_pooled.View, W("conv1"), B("conv1"), _squeezed.View, Squeeze);
        K.Activations.Forward(Activation.Relu, _squeezed.View, _relu.View);
        K.PointwiseConv.Forward(_relu.View, W("conv2"), B("conv2"), _excited.View, Excite);
        K.Activations.Forward(Activation.HardSigmoid, _excited.View, _gate.View);
        K.ChannelScale.Forward(input, _gate.View, _output, _batch, _channels, _spatial);
    }

    public override ArrayView<float> Backward(ArrayView<float> outputGradient)
    {
        using var section = Time("squeeze-excite");
        if (_fused)
        {
            K.Excitation.Backward(_input, outputGradient, W("conv1"), W("conv2"), _pooled.View, _squeezed.View, _relu.View, _excited.View,
                _gate.View, _dGate.View, _dRelu.View, _dInput.View, DW("conv1"), DB("conv1"), DW("conv2"), DB("conv2"), Shape);
            return _dInput.View;
        }
        K.ChannelScale.Backward(_input, _gate.View, outputGradient, _dInput.View, _dGate.View, _batch, _channels, _spatial);
        K.Activations.Backward(Activation.HardSigmoid, _excited.View, _dGate.View, _dGate.View);
        K.PointwiseConv.BackwardWeight(_dGate.View, _relu.View, DW("conv2"), Excite);
        K.PointwiseConv.BiasGradient(_dGate.View, DB("conv2"), Excite);
        K.PointwiseConv.BackwardData(_dGate.View, W("conv2"), _dRelu.View, Excite);
        K.Activations.Backward(Activation.Relu, _squeezed.View, _dRelu.View, _dRelu.View);
        K.PointwiseConv.BackwardWeight(_dRelu.View, _pooled.View, DW("conv1"), Squeeze);
        K.PointwiseConv.BiasGradient(_dRelu.View, DB("conv1"), Squeeze);
        K.PointwiseConv.BackwardData(_dRelu.View, W("conv1"), _dPooled.View, Squeeze);
        // The input feeds both the pool and the multiply: add the pool's share to the multiply's.
        K.Pooling.GlobalAveragePoolBackward(_dPooled.View, _dInput.View, _batch, _channels, _spatial, accumulate: true);
        return _dInput.View;
    }

    ArrayView<float> W(string conv) => _store.Param($"{_name}.{conv}.weight");
    ArrayView<float> B(string conv) => _store.Param($"{_name}.{conv}.bias");
    ArrayView<float> DW(string conv) => _store.Grad($"{_name}.{conv}.weight");
    ArrayView<float> DB(string conv) => _store.Grad($"{_name}.{conv}.bias");
}
