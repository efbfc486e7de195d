using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine.Layers;

/// <summary>One bidirectional LSTM layer over [B, T, In] → [B, T, 2H]; its parameters are one contiguous block.</summary>
public sealed class BiLstm : Layer
{
    readonly ParameterStore _store;
    readonly InferenceWeights _inference;
    readonly string _name;
    readonly LstmShape _shape;
    readonly int _offset;
    readonly Tensor<float> _output, _saved, _scratch, _dInput;
    ArrayView<float> _input;

    public BiLstm(KernelSet kernels, ParameterStore store, InferenceWeights inference, string name, int batch, int steps, int input, int hidden, bool training)
        : base(kernels, training)
    {
        _store = store;
        _inference = inference;
        _name = name;
        _shape = new LstmShape(batch, steps, input, hidden);
        // The layout stores the layer's tensors in the kernel's block order: the block starts at the first one.
        _offset = store.Layout[$"{name}.forward.weight_ih"].Offset;
        if (store.Layout[$"{name}.reverse.bias_hh"].Offset + 4 * hidden != _offset + _shape.ParameterCount)
            throw new InvalidOperationException($"parameter layout of {name} does not match the LSTM kernel's");
        _output = Allocate(_shape.OutputLength);
        // Host inference keeps only the input projection; the gpu policy's forward kernel writes all it saves.
        _saved = Allocate(training || !kernels.Device.UsesHost ? _shape.SavedLength : _shape.GatesLength);
        _scratch = ForTraining(_shape.ScratchLength);
        _dInput = ForTraining(_shape.InputLength);
    }

    public override ArrayView<float> Output => _output.View;

    ArrayView<float> Block(Tensor<float> t) => t.View.SubView(_offset, _shape.ParameterCount);

    public override void Forward(ArrayView<float> input, bool training)
    {
        using var section = Time("lstm");
        if (!training && K.Device.UsesHost)
        {
            // Evaluation on the host: no gates kept for a backward pass; the input projection reuses the saved buffer.
            K.Lstm.Infer(_shape, Block(_store.Parameters), input, _output.View, _saved.View.SubView(0, _shape.GatesLength),
                _inference.PackedLstm(_name));
            return;
        }
        _input = input;
        K.Lstm.Forward(_shape, Block(_store.Parameters), input, _output.View, _saved.View);
    }

    public override ArrayView<float> Backward(ArrayView<float> outputGradient)
    {
        using var section = Time("lstm");
        K.Lstm.Backward(_shape, Block(_store.Parameters), _input, _output.View, _saved.View, outputGradient,
            _dInput.View, Block(_store.Gradients), _scratch.View);
        return _dInput.View;
    }
}
