using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine.Layers;

/// <summary>The convolution of a <see cref="ConvBnAct"/>: dense and depthwise run as <see cref="GroupedConv"/>, pointwise as a GEMM;
/// the kind also names the profiler family.</summary>
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
    readonly Tensor<float> _conv, _mean, _invStd, _dNormalized;
    readonly ArrayView<float> _normalized, _activated;
    readonly Tensor<float>? _dInput;
    ArrayView<float> _input;

    public ConvBnAct(KernelSet kernels, ParameterStore store, InferenceWeights inference, string name, ConvKind kind, ConvShape shape,
        Activation act, bool inputGradient, bool training, ArrayView<float> output = default) : base(kernels, training)
    {
        _store = store;
        _inference = inference;
        _name = name;
        _kind = kind;
        _shape = shape;
        _act = act;
        int[] outShape = [shape.Batch, shape.OutChannels, shape.OutHeight, shape.OutWidth];
        // Inference writes the activated output only (one pass), into a shared slot when given one (inference only);
        // training keeps each stage for the backward.
        _activated = output.IsValid && !training ? output : Allocate(outShape).View;
        _normalized = act == Activation.None ? _activated : ForTraining(outShape).View;
        _conv = ForTraining(outShape);
        _dNormalized = ForTraining(outShape);
        _mean = ForTraining(shape.OutChannels);
        _invStd = ForTraining(shape.OutChannels);
        if (inputGradient && training) _dInput = Allocate(shape.Batch, shape.InChannels, shape.Height, shape.Width);
    }

    public ConvShape Shape => _shape;
    public override ArrayView<float> Output => _activated;
    int Spatial => _shape.OutHeight * _shape.OutWidth;
    string ConvFamily => $"conv {_kind.ToString().ToLowerInvariant()}";
    PointwiseShape Pointwise => new(_shape.Batch, _shape.InChannels, _shape.OutChannels, Spatial);

    public override void Forward(ArrayView<float> input, bool training) => Forward(input, default, training);

    /// <summary>The forward with a residual shortcut (valid <paramref name="shortcut"/>): the output is
    /// act(BatchNorm(conv(x))) + shortcut, the add fused into BatchNorm's pass. <paramref name="inputScale"/> (inference,
    /// 1×1 only, where <see cref="PointwiseConv.ScalesInput"/>): x's channels times these [B, C] as they are read.</summary>
    public void Forward(ArrayView<float> input, ArrayView<float> shortcut, bool training, ArrayView<float> inputScale = default)
    {
        if (inputScale.IsValid && (training || _kind != ConvKind.Pointwise))
            throw new NotSupportedException($"{_name}: only a 1×1 convolution at inference scales its input");
        if (!training)
        {
            if (!Infer(input, shortcut, inputScale) && shortcut.IsValid)
                using (Time("residual add")) K.Activations.Add(shortcut, _activated, _activated);
            return;
        }
        _input = input;
        var w = _store.Param($"{_name}.weight");
        using (Time(ConvFamily))
        {
            switch (_kind)
            {
                case ConvKind.Dense or ConvKind.Depthwise: K.GroupedConv.Forward(input, w, _conv.View, _shape); break;
                case ConvKind.Pointwise: K.PointwiseConv.Forward(input, w, _conv.View, Pointwise); break;
            }
        }
        var (gamma, beta) = (_store.Param($"{_name}.bn.weight"), _store.Param($"{_name}.bn.bias"));
        var (runningMean, runningVar) = (_store.Buffer($"{_name}.bn.running_mean"), _store.Buffer($"{_name}.bn.running_var"));
        // The activation (and the shortcut) in BatchNorm's epilogue: _normalized keeps the pre-activation for the backward.
        using (Time("batchnorm"))
            K.BatchNorm.ForwardTraining(_conv.View, gamma, beta, _normalized, _mean.View, _invStd.View,
                runningMean, runningVar, _shape.Batch, _shape.OutChannels, Spatial, act: _act, activated: _activated, residual: shortcut);
    }

    /// <summary>Evaluation mode: one pass, act(BatchNorm(conv(x, w))) with the running statistics
    /// (<see cref="InferenceWeights"/>), into the same output buffer; returns whether it added <paramref name="shortcut"/>
    /// too (a 1×1 convolution's host epilogue does).</summary>
    bool Infer(ArrayView<float> input, ArrayView<float> shortcut, ArrayView<float> inputScale)
    {
        var w = _store.Param($"{_name}.weight");
        var norm = _inference[_name];
        using var section = Time(ConvFamily);
        switch (_kind)
        {
            case ConvKind.Dense or ConvKind.Depthwise: K.GroupedConv.Forward(input, w, norm, _activated, _shape, _act); return false;
            default: return K.PointwiseConv.Forward(input, w, norm, _activated, Pointwise, _act, _inference.Packed(_name), shortcut, inputScale);
        }
    }

    public override ArrayView<float> Backward(ArrayView<float> outputGradient) => Backward(outputGradient, default);

    /// <summary>The backward; with a valid <paramref name="addInputGradientTo"/> (1×1 convolutions only) the input
    /// gradient is added into that buffer, which is returned (a residual unit's shortcut gradient, summed by the GEMM).</summary>
    public ArrayView<float> Backward(ArrayView<float> outputGradient, ArrayView<float> addInputGradientTo)
    {
        if (addInputGradientTo.IsValid && _kind != ConvKind.Pointwise)
            throw new NotSupportedException($"{_name}: only 1×1 convolutions add their input gradient into a buffer");
        // BatchNorm's backward takes the activation's; its input gradient goes into the scratch buffer.
        var dConv = _dNormalized.View;
        using (Time("batchnorm"))
            K.BatchNorm.Backward(_conv.View, outputGradient, _store.Param($"{_name}.bn.weight"), _mean.View, _invStd.View,
                dConv, _store.Grad($"{_name}.bn.weight"), _store.Grad($"{_name}.bn.bias"), _shape.Batch, _shape.OutChannels, Spatial,
                _act, _normalized);
        var (w, dw) = (_store.Param($"{_name}.weight"), _store.Grad($"{_name}.weight"));
        using var section = Time(ConvFamily);
        switch (_kind)
        {
            case ConvKind.Dense or ConvKind.Depthwise:
                K.GroupedConv.BackwardWeight(dConv, _input, dw, _shape);
                if (_dInput != null) K.GroupedConv.BackwardData(dConv, w, _dInput.View, _shape);
                break;
            case ConvKind.Pointwise:
                if (addInputGradientTo.IsValid)
                {
                    K.PointwiseConv.Backward(dConv, _input, w, dw, addInputGradientTo, Pointwise, accumulate: true);
                    return addInputGradientTo;
                }
                if (_dInput != null) K.PointwiseConv.Backward(dConv, _input, w, dw, _dInput.View, Pointwise);
                else K.PointwiseConv.BackwardWeight(dConv, _input, dw, Pointwise);
                break;
        }
        return _dInput?.View ?? default;
    }
}
