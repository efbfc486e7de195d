using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine.Layers;

public enum ConvKind { Dense, Depthwise, Pointwise }

/// <summary>
/// Convolution (no bias) → BatchNorm → activation: conv1, conv2 and the three convolutions of a residual
/// unit. BatchNorm uses batch statistics (and updates the running ones) in training, running ones otherwise.
/// </summary>
public sealed class ConvBnAct : Layer
{
    readonly ParameterStore _store;
    readonly InferenceWeights _inference;
    readonly string _name;
    readonly ConvKind _kind;
    readonly ConvShape _shape;
    readonly Activation _act;
    readonly Tensor<float> _conv, _normalized, _activated, _mean, _invStd, _dNormalized;
    readonly Tensor<float>? _dInput;
    ArrayView<float> _input;

    public ConvBnAct(KernelSet kernels, ParameterStore store, InferenceWeights inference, string name, ConvKind kind, ConvShape shape,
        Activation act, bool inputGradient, bool training) : base(kernels, training)
    {
        _store = store;
        _inference = inference;
        _name = name;
        _kind = kind;
        _shape = shape;
        _act = act;
        int[] outShape = [shape.Batch, shape.OutChannels, shape.OutHeight, shape.OutWidth];
        // Inference writes the activated output only (one pass); training keeps each stage for the backward.
        _activated = Allocate(outShape);
        _normalized = act == Activation.None ? _activated : ForTraining(outShape);
        _conv = ForTraining(outShape);
        _dNormalized = ForTraining(outShape);
        _mean = ForTraining(shape.OutChannels);
        _invStd = ForTraining(shape.OutChannels);
        if (inputGradient && training) _dInput = Allocate(shape.Batch, shape.InChannels, shape.Height, shape.Width);
    }

    public ConvShape Shape => _shape;
    public override ArrayView<float> Output => _activated.View;
    int Spatial => _shape.OutHeight * _shape.OutWidth;
    string ConvFamily => $"conv {_kind.ToString().ToLowerInvariant()}";
    PointwiseShape Pointwise => new(_shape.Batch, _shape.InChannels, _shape.OutChannels, Spatial);

    public override void Forward(ArrayView<float> input, bool training)
    {
        if (!training)
        {
            Infer(input);
            return;
        }
        _input = input;
        var w = _store.Param($"{_name}.weight");
        using (Time(ConvFamily))
        {
            switch (_kind)
            {
                case ConvKind.Dense: K.DenseConv.Forward(input, w, _conv.View, _shape); break;
                case ConvKind.Depthwise: K.DepthwiseConv.Forward(input, w, _conv.View, _shape); break;
                case ConvKind.Pointwise: K.PointwiseConv.Forward(input, w, _conv.View, Pointwise); break;
            }
        }
        var (gamma, beta) = (_store.Param($"{_name}.bn.weight"), _store.Param($"{_name}.bn.bias"));
        var (runningMean, runningVar) = (_store.Buffer($"{_name}.bn.running_mean"), _store.Buffer($"{_name}.bn.running_var"));
        using (Time("batchnorm"))
            K.BatchNorm.ForwardTraining(_conv.View, gamma, beta, _normalized.View, _mean.View, _invStd.View,
                runningMean, runningVar, _shape.Batch, _shape.OutChannels, Spatial);
        if (_act != Activation.None)
            using (Time("activation")) K.Activations.Forward(_act, _normalized.View, _activated.View);
    }

    /// <summary>Evaluation mode: one pass, act(BatchNorm(conv(x, w))) with the running statistics
    /// (<see cref="InferenceWeights"/>), into the same output buffer.</summary>
    void Infer(ArrayView<float> input)
    {
        var w = _store.Param($"{_name}.weight");
        var norm = _inference[_name];
        using var section = Time(ConvFamily);
        switch (_kind)
        {
            case ConvKind.Dense: K.DenseConv.Forward(input, w, norm, _activated.View, _shape, _act); break;
            case ConvKind.Depthwise: K.DepthwiseConv.Forward(input, w, norm, _activated.View, _shape, _act); break;
            case ConvKind.Pointwise: K.PointwiseConv.Forward(input, w, norm, _activated.View, Pointwise, _act, _inference.Packed(_name)); break;
        }
    }

    public override ArrayView<float> Backward(ArrayView<float> outputGradient)
    {
        var dNormalized = outputGradient;
        if (_act != Activation.None)
        {
            using (Time("activation")) K.Activations.Backward(_act, _normalized.View, outputGradient, _dNormalized.View);
            dNormalized = _dNormalized.View;
        }
        // BatchNorm's input gradient goes into the same scratch buffer (the kernel allows dx = dy).
        var dConv = _dNormalized.View;
        using (Time("batchnorm"))
            K.BatchNorm.Backward(_conv.View, dNormalized, _store.Param($"{_name}.bn.weight"), _mean.View, _invStd.View,
                dConv, _store.Grad($"{_name}.bn.weight"), _store.Grad($"{_name}.bn.bias"), _shape.Batch, _shape.OutChannels, Spatial);
        var (w, dw) = (_store.Param($"{_name}.weight"), _store.Grad($"{_name}.weight"));
        using var section = Time(ConvFamily);
        switch (_kind)
        {
            case ConvKind.Dense:
                K.DenseConv.BackwardWeight(dConv, _input, dw, _shape);
                if (_dInput != null) K.DenseConv.BackwardData(dConv, w, _dInput.View, _shape);
                break;
            case ConvKind.Depthwise:
                K.DepthwiseConv.BackwardWeight(dConv, _input, dw, _shape);
                if (_dInput != null) K.DepthwiseConv.BackwardData(dConv, w, _dInput.View, _shape);
                break;
            case ConvKind.Pointwise:
                K.PointwiseConv.BackwardWeight(dConv, _input, dw, Pointwise);
                if (_dInput != null) K.PointwiseConv.BackwardData(dConv, w, _dInput.View, Pointwise);
                break;
        }
        return _dInput?.View ?? default;
    }
}
