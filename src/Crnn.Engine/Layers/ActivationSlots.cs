using Crnn.Kernels;
using ILGPU;
using ILGPU.Runtime;
using Device = Crnn.Kernels.Device;

namespace Crnn.Engine.Layers;

/// <summary>
/// Three buffers the size of the largest backbone activation that the layers of an inference-only network write
/// their outputs into in turn, instead of one buffer each: a forward then writes into memory it used a few layers
/// ago, still in cache, not into a cold buffer per layer (at batch 32 a 1×1 convolution writes up to 6 MB; into
/// cold memory that cost it a fifth more on the CPU). Three suffice: a layer reads its input and, at the end of a
/// residual unit, the unit's input.
/// </summary>
public sealed class ActivationSlots : IDisposable
{
    readonly Tensor<float>[] _slots;

    public ActivationSlots(Device device, long length) =>
        _slots = [.. Enumerable.Range(0, 3).Select(_ => device.Allocate((int)Math.Max(length, 1)))];

    /// <summary>The first <paramref name="length"/> elements of a slot that none of the <paramref name="live"/> views is in.</summary>
    public ArrayView<float> Other(long length, params ReadOnlySpan<ArrayView<float>> live)
    {
        foreach (var slot in _slots)
        {
            bool used = false;
            foreach (var view in live) used |= view.IsValid && BufferOf(view) == BufferOf(slot.View);
            if (!used) return slot.View.SubView(0, length);
        }
        throw new InvalidOperationException("no free activation slot"); // more than two live inputs: a layer graph this class was not made for
    }

    static MemoryBuffer BufferOf<T>(T view) where T : IContiguousArrayView => view.Buffer;

    public void Dispose()
    {
        foreach (var slot in _slots) slot.Dispose();
    }
}
