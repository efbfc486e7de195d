using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine.Layers;

/// <summary>
/// MobileNetV3's inverted residual: 1×1 expand + BN + act, k×k depthwise + BN + act, optional SE,
/// 1×1 linear + BN, and the shortcut x + y when the unit keeps shape and channels.
/// </summary>
public sealed class ResidualUnit : Layer
{
    readonly ConvBnAct _expand, _depthwise, _linear;
    readonly SqueezeExcite? _se;
    readonly bool _shortcut;

    public ResidualUnit(KernelSet kernels, ParameterStore store, InferenceWeights inference, string name, UnitSpec u, int batch, int height, int width,
        bool training, ActivationSlots? slots = null, ArrayView<float> input = default) : base(kernels, training)
    {
        _shortcut = u.HasShortcut;
        // Outputs in shared slots (inference only): never the unit's input, which the shortcut reads at the end.
        ArrayView<float> Slot(long length, ArrayView<float> reads) => slots?.Other(length, input, reads) ?? default;
        // With the shortcut the expand's input gradient is added into the unit's output gradient: no buffer of its own.
        var expand = ConvShape.Dense(batch, u.In, height, width, u.Expand, 1, 1, 1, 0);
        _expand = Own(new ConvBnAct(kernels, store, inference, $"{name}.expand", ConvKind.Pointwise,
            expand, u.Act, inputGradient: !_shortcut, training, Slot(expand.OutputLength, default)));
        var d = ConvShape.Depthwise(batch, u.Expand, height, width, u.Kernel, u.StrideH, u.StrideW);
        _depthwise = Own(new ConvBnAct(kernels, store, inference, $"{name}.depthwise", ConvKind.Depthwise,
            d, u.Act, inputGradient: true, training, Slot(d.OutputLength, _expand.Output)));
        var features = _depthwise.Output;
        var linear = ConvShape.Dense(batch, u.Expand, d.OutHeight, d.OutWidth, u.Out, 1, 1, 1, 0);
        if (u.SqueezeExcite)
        {
            // Inference on the host's AVX-512 path: the linear convolution applies the gates as it reads the features.
            bool gatesOnly = !training && kernels.PointwiseConv.ScalesInput(new PointwiseShape(batch, u.Expand, u.Out, d.OutHeight * d.OutWidth));
            _se = Own(new SqueezeExcite(kernels, store, $"{name}.se", batch, u.Expand, u.SqueezeChannels, d.OutHeight * d.OutWidth, training,
                gatesOnly ? default : Slot(d.OutputLength, features), gatesOnly));
            if (!gatesOnly) features = _se.Output;
        }
        _linear = Own(new ConvBnAct(kernels, store, inference, $"{name}.linear", ConvKind.Pointwise,
            linear, Activation.None, inputGradient: true, training, Slot(linear.OutputLength, features)));
        OutHeight = d.OutHeight;
        OutWidth = d.OutWidth;
    }

    /// <summary>The unit's own layers, so a profiler can be attached to each.</summary>
    public IEnumerable<Layer> Children => new Layer?[] { _expand, _depthwise, _se, _linear }.OfType<Layer>();

    public int OutHeight { get; }
    public int OutWidth { get; }
    public override ArrayView<float> Output => _linear.Output;

    public override void Forward(ArrayView<float> input, bool training)
    {
        _expand.Forward(input, training);
        _depthwise.Forward(_expand.Output, training);
        var features = _depthwise.Output;
        if (_se != null)
        {
            _se.Forward(features, training);
            features = _se.Output;
        }
        // The shortcut x + y is added in the linear convolution's BatchNorm pass (or its epilogue).
        _linear.Forward(features, _shortcut ? input : default, training, _se?.Gates ?? default);
    }

    /// <summary>With the shortcut, the input gradient is the output gradient plus the expand's: the expand's GEMM adds
    /// it into <paramref name="outputGradient"/> (read by nothing after the linear's backward), which is returned.</summary>
    public override ArrayView<float> Backward(ArrayView<float> outputGradient)
    {
        var d = _linear.Backward(outputGradient);
        if (_se != null) d = _se.Backward(d);
        d = _depthwise.Backward(d);
        return _expand.Backward(d, _shortcut ? outputGradient : default);
    }
}
