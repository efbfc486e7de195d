using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine.Layers;

/// <summary>The CTC head: [B·T, 2H] → logits [B·T, C] (y = x·Wᵀ + b).</summary>
public sealed class LinearHead : Layer
{
    readonly ParameterStore _store;
    readonly InferenceWeights _inference;
    readonly int _rows, _in, _out;
    readonly Tensor<float> _output, _dInput;
    ArrayView<float> _input;

    public LinearHead(KernelSet kernels, ParameterStore store, InferenceWeights inference, int rows, int inFeatures, int outFeatures, bool training)
        : base(kernels, training)
    {
        (_store, _inference, _rows, _in, _out) = (store, inference, rows, inFeatures, outFeatures);
        _output = Allocate(rows, outFeatures);
        _dInput = ForTraining(rows, inFeatures);
    }

    public override ArrayView<float> Output => _output.View;

    public override void Forward(ArrayView<float> input, bool training)
    {
        using var section = Time("linear head");
        _input = input;
        // Evaluation reads the weights packed for the host GEMM (where there are: host policy).
        K.Linear.Forward(input, _store.Param("head.fc.weight"), _store.Param("head.fc.bias"), _output.View, _rows, _in, _out,
            training ? null : _inference.Packed("head.fc"));
    }

    public override ArrayView<float> Backward(ArrayView<float> outputGradient)
    {
        using var section = Time("linear head");
        K.Linear.Backward(_input, _store.Param("head.fc.weight"), outputGradient, _dInput.View,
            _store.Grad("head.fc.weight"), _store.Grad("head.fc.bias"), _rows, _in, _out);
        return _dInput.View;
    }
}
