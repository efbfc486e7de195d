using Crnn.Kernels;
using ILGPU;

namespace Crnn.Engine;

/// <summary>
/// The model's state on the device: all parameters in one buffer, their gradients in a second with the same
/// layout, BatchNorm running statistics in a third. Layers address them by name through views, so one Adam
/// launch, one gradient norm and one checkpoint write cover the whole model.
/// </summary>
public sealed class ParameterStore : IDisposable
{
    public ParameterLayout Layout { get; }
    public Tensor<float> Parameters { get; }
    public Tensor<float> Gradients { get; }
    public Tensor<float> Buffers { get; }

    public ParameterStore(Device device, ParameterLayout layout)
    {
        Layout = layout;
        Parameters = device.Allocate(layout.ParameterCount);
        Gradients = device.Allocate(layout.ParameterCount);
        Buffers = device.Allocate(layout.BufferCount);
    }

    /// <summary>Counts changes of the parameters or buffers (loads, optimizer steps, training forwards that update
    /// BatchNorm statistics), so values derived from them (<see cref="InferenceWeights"/>) know when to refresh.</summary>
    public long Version { get; private set; }

    /// <summary>Call after writing <see cref="Parameters"/> or <see cref="Buffers"/>.</summary>
    public void Changed() => Version++;

    public ArrayView<float> Param(string name) => View(Parameters, Layout[name]);
    public ArrayView<float> Grad(string name) => View(Gradients, Layout[name]);
    public ArrayView<float> Buffer(string name) => View(Buffers, Layout[name]);

    static ArrayView<float> View(Tensor<float> t, ParameterSpec spec) => t.View.SubView(spec.Offset, spec.Length);

    public void Dispose()
    {
        Parameters.Dispose();
        Gradients.Dispose();
        Buffers.Dispose();
    }
}
