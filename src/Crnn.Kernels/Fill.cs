using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// Zeroes device memory with a kernel. ILGPU's MemSetToZero/MemSet are not used anywhere: in ILGPU 1.5.3's
/// OpenCL backend they multiply a sub-view's offset, already in bytes, by the element size again, so on a
/// view at a non-zero offset (a tensor slice, one layer's part of the gradient buffer) they clear the wrong
/// range. Nothing is lost: a clear is one cheap launch on every backend.
/// </summary>
public static class Fill
{
    // One loaded kernel per device (loading costs far more than a launch).
    static readonly ConditionalWeakTable<Device, Action<KernelConfig, ArrayView<int>>> Loaded = new();

    /// <summary>Sets every element of <paramref name="view"/> to all-zero bits.</summary>
    public static void Zero<T>(Device device, ArrayView<T> view) where T : unmanaged
    {
        if (view.Length == 0) return;
        // Cleared as 4-byte words: every tensor type here (float, int) is a whole number of them.
        if (Unsafe.SizeOf<T>() % sizeof(int) != 0)
            throw new NotSupportedException($"Fill.Zero clears 4-byte words; {typeof(T).Name} is {Unsafe.SizeOf<T>()} bytes");
        var words = view.Cast<int>();
        var kernel = Loaded.GetValue(device, d => d.Accelerator.LoadStreamKernel<ArrayView<int>>(ZeroKernel));
        if (device.Launch(nameof(ZeroKernel), words.Length, 0, 4.0 * words.Length, out var grid))
            kernel(grid, words);
    }

    static void ZeroKernel(ArrayView<int> data)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = Grid.GlobalIndex.X; i < data.Length; i += stride) data[i] = 0;
    }
}
