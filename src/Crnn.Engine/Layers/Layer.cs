using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine.Layers;

/// <summary>
/// A layer with explicit Forward and Backward (no autograd): it owns its output and input-gradient
/// buffers, allocated once for a batch size, and keeps a view of its input for the backward pass.
/// Parameter gradients are written (not accumulated) into the store's gradient buffer.
/// </summary>
public abstract class Layer : IDisposable
{
    readonly List<IDisposable> _owned = [];
    Tensor<float>? _placeholder;

    protected Layer(KernelSet kernels, bool training)
    {
        K = kernels;
        Training = training;
    }

    protected KernelSet K { get; }

    /// <summary>Whether the layer was built for training (backward buffers allocated); else inference only.</summary>
    public bool Training { get; }

    /// <summary>Set to time this layer's sections by family (see <see cref="Engine.Profiler"/>).</summary>
    public Profiler? Profiler { get; set; }

    /// <summary>A timed section when profiling, a no-op otherwise.</summary>
    protected Profiler.Section Time(string family) => Profiler?.Measure(family) ?? default;

    /// <summary>The last forward's output.</summary>
    public abstract ArrayView<float> Output { get; }

    public abstract void Forward(ArrayView<float> input, bool training);

    /// <summary>Back-propagates <paramref name="outputGradient"/>; returns the gradient with respect to the
    /// input (an invalid view when the layer was built without one, as the first layer is). The layer may reuse
    /// <paramref name="outputGradient"/>'s buffer for it (a residual unit adds its input gradient into it).</summary>
    public abstract ArrayView<float> Backward(ArrayView<float> outputGradient);

    protected Tensor<float> Allocate(params int[] shape) => Own(K.Device.Allocate(shape));

    /// <summary>A buffer only training reads or writes: allocated when <see cref="Training"/>, else one shared
    /// element that nothing uses (an inference-only network refuses training forwards and backward passes).</summary>
    protected Tensor<float> ForTraining(params int[] shape) => Training ? Allocate(shape) : _placeholder ??= Allocate(1);

    protected T Own<T>(T disposable) where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    public virtual void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
        _owned.Clear();
    }
}
