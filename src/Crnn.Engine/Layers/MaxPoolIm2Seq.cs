using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine.Layers;

/// <summary>
/// The backbone's final 2×2 max-pool ([B, C, 2, W] → [B, C, 1, W/2]) and Im2Seq, the transpose to the
/// sequence [B, T, C] the LSTM reads.
/// </summary>
public sealed class MaxPoolIm2Seq : Layer
{
    readonly PoolShape _pool;
    readonly Tensor<float> _pooled, _sequence, _dPooled, _dInput;
    readonly Tensor<int> _indices;

    public MaxPoolIm2Seq(KernelSet kernels, int batch, int channels, int height, int width, bool training) : base(kernels, training)
    {
        _pool = Pooling.MaxPoolShape(batch, channels, height, width);
        if (_pool.OutHeight != 1) throw new ArgumentException($"Im2Seq needs a feature map 1 high after pooling, got {_pool.OutHeight}");
        _pooled = Allocate(batch, channels, _pool.OutWidth);
        _sequence = Allocate(batch, _pool.OutWidth, channels);
        _indices = Own(K.Device.Allocate<int>(_pool.OutputLength));
        _dPooled = ForTraining(batch, channels, _pool.OutWidth);
        _dInput = ForTraining(batch, channels, height, width);
    }

    public int Steps => _pool.OutWidth;
    public override ArrayView<float> Output => _sequence.View;

    public override void Forward(ArrayView<float> input, bool training)
    {
        using var section = Time("maxpool+im2seq");
        if (!training && K.Device.UsesHost)
        {
            K.Pooling.MaxPoolToSequence(input, _sequence.View, _pool); // no indices, no transpose
            return;
        }
        K.Pooling.MaxPoolForward(input, _pooled.View, _indices.View, _pool);
        K.Transpose.Run(_pooled.View, _sequence.View, _pool.Batch, _pool.Channels, _pool.OutWidth);
    }

    public override ArrayView<float> Backward(ArrayView<float> outputGradient)
    {
        using var section = Time("maxpool+im2seq");
        K.Transpose.Run(outputGradient, _dPooled.View, _pool.Batch, _pool.OutWidth, _pool.Channels);
        K.Pooling.MaxPoolBackward(_dPooled.View, _indices.View, _dInput.View, _pool);
        return _dInput.View;
    }
}
