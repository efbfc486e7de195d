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
    readonly Tensor<float>? _sum;

    public ResidualUnit(KernelSet kernels, ParameterStore store, InferenceWeights inference, string name, UnitSpec u, int batch, int height, int width,
        bool training) : base(kernels, training)
    {
        _expand = Own(new ConvBnAct(kernels, store, inference, $"{name}.expand", ConvKind.Pointwise,
            ConvShape.Dense(batch, u.In, height, width, u.Expand, 1, 1, 1, 0), u.Act, inputGradient: true, training));
        _depthwise = Own(new ConvBnAct(kernels, store, inference, $"{name}.depthwise", ConvKind.Depthwise,
            ConvShape.Depthwise(batch, u.Expand, height, width, u.Kernel, u.StrideH, u.StrideW), u.Act, inputGradient: true, training));
        var d = _depthwise.Shape;
        if (u.SqueezeExcite)
            _se = Own(new SqueezeExcite(kernels, store, $"{name}.se", batch, u.Expand, u.SqueezeChannels, d.OutHeight * d.OutWidth, training));
        _linear = Own(new ConvBnAct(kernels, store, inference, $"{name}.linear", ConvKind.Pointwise,
            ConvShape.Dense(batch, u.Expand, d.OutHeight, d.OutWidth, u.Out, 1, 1, 1, 0), Activation.None, inputGradient: true, training));
        if (u.HasShortcut) _sum = Allocate(batch, u.Out, d.OutHeight, d.OutWidth);
        OutHeight = d.OutHeight;
        OutWidth = d.OutWidth;
    }

    /// <summary>The unit's own layers, so a profiler can be attached to each.</summary>
    public IEnumerable<Layer> Children => new Layer?[] { _expand, _depthwise, _se, _linear }.OfType<Layer>();

    public int OutHeight { get; }
    public int OutWidth { get; }
    public override ArrayView<float> Output => _sum?.View ?? _linear.Output;

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
        _linear.Forward(features, training);
        if (_sum != null)
            using (Time("residual add")) K.Activations.Add(input, _linear.Output, _sum.View);
    }

    public override ArrayView<float> Backward(ArrayView<float> outputGradient)
    {
        var d = _linear.Backward(outputGradient);
        if (_se != null) d = _se.Backward(d);
        d = _depthwise.Backward(d);
        d = _expand.Backward(d);
        // The shortcut passes the output gradient straight to the input.
        if (_sum != null)
            using (Time("residual add")) K.Activations.Add(d, outputGradient, d);
        return d;
    }
}
