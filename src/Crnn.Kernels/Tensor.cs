using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// A shaped handle over device memory: either the owner of a buffer or a view into one (parameters live
/// in one contiguous buffer and every layer sees its slice). No hidden copies: host transfers are explicit.
/// </summary>
public sealed class Tensor<T> : IDisposable where T : unmanaged
{
    readonly MemoryBuffer1D<T, Stride1D.Dense>? _owned;
    readonly Device _device;

    public ArrayView<T> View { get; }
    public int[] Shape { get; }
    public int Length => (int)View.Length;

    Tensor(Device device, MemoryBuffer1D<T, Stride1D.Dense>? owned, ArrayView<T> view, int[] shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(",", shape)}]");
            count *= d;
        }
        if (count != view.Length)
            throw new ArgumentException($"shape [{string.Join(",", shape)}] holds {count} elements, view has {view.Length}");
        _device = device;
        _owned = owned;
        View = view;
        Shape = shape;
    }

    internal static Tensor<T> Allocate(Device device, int[] shape)
    {
        long count = 1;
        foreach (int d in shape) count *= d;
        if (count > int.MaxValue) throw new ArgumentException($"tensor of {count} elements exceeds the 2^31 element limit");
        var buffer = device.Accelerator.Allocate1D<T>(Math.Max(count, 1));
        return new Tensor<T>(device, buffer, buffer.View.SubView(0, count), (int[])shape.Clone());
    }

    /// <summary>A non-owning view of <paramref name="count"/> elements starting at <paramref name="offset"/>.</summary>
    public Tensor<T> Slice(int offset, params int[] shape)
    {
        long count = 1;
        foreach (int d in shape) count *= d;
        if (offset < 0 || offset + count > Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + count}) outside tensor of {Length}");
        return new Tensor<T>(_device, null, View.SubView(offset, count), (int[])shape.Clone());
    }

    /// <summary>The same memory under another shape with the same element count.</summary>
    public Tensor<T> Reshape(params int[] shape) => new(_device, null, View, (int[])shape.Clone());

    public T[] ToHost()
    {
        var host = new T[Length];
        if (Length > 0) View.CopyToCPU(host);
        return host;
    }

    public void CopyFrom(ReadOnlySpan<T> host)
    {
        if (host.Length != Length) throw new ArgumentException($"host data has {host.Length} elements, tensor has {Length}");
        if (Length > 0) View.CopyFromCPU(host);
    }

    /// <summary>Sets every element to zero on the device (with a kernel: see <see cref="Kernels.Fill"/> for why not MemSetToZero).</summary>
    public void Clear() => Kernels.Fill.Zero(_device, View);

    /// <summary>Sets every element to <paramref name="value"/> (through the host: for tests and set-up, not hot paths).</summary>
    public void Fill(T value)
    {
        var host = new T[Length];
        Array.Fill(host, value);
        CopyFrom(host);
    }

    public void Dispose() => _owned?.Dispose();

    public override string ToString() => $"Tensor<{typeof(T).Name}>[{string.Join(",", Shape)}]";
}
