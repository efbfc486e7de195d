using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// What the host variants (<see cref="HostGemm"/>, <see cref="HostDepthwise"/>, <see cref="HostBatchNorm"/>, <see cref="HostRows"/>,
/// <see cref="HostElementwise"/>) share: entering host code on the CPU accelerator, host addresses of views,
/// deterministic parallel loops, per-thread scratch and SIMD helpers.
/// </summary>
internal static unsafe class HostMemory
{
    /// <summary>Host address of a CPU-accelerator view (null when empty): its buffer's native pointer plus the view's offset.</summary>
    public static float* Pointer(ArrayView<float> view) => view.Length == 0 ? null : Address(view);

    // ILGPU exposes a view's buffer and offset through these interfaces; the generic constraint avoids boxing.
    static float* Address<T>(T view) where T : IContiguousArrayView =>
        (float*)((byte*)view.Buffer.NativePtr + view.IndexInBytes);

    /// <summary>Prepares host code that touches device memory: only the CPU accelerator's memory is host
    /// memory, and kernels launched earlier must finish first. The host code returns when done, so kernels
    /// launched after it see its result.</summary>
    public static void Enter(Device device, string operation)
    {
        if (!device.IsCpu) throw new NotSupportedException($"the host code of {operation} runs only on the CPU accelerator");
        device.Synchronize();
    }

    /// <summary>
    /// body(first, end) over [0, count) cut into contiguous ranges, in parallel when there is enough work
    /// (<paramref name="workPerItem"/> is a rough cost per item in element operations). Results must not depend
    /// on the cut: each item is computed whole by one call, so the host variants stay deterministic.
    /// </summary>
    public static void For(int count, long workPerItem, Action<int, int> body)
    {
        if (count <= 0) return;
        int cores = HostTeam.Cores;
        long work = count * Math.Max(workPerItem, 1);
        int ranges = work < SerialWork || cores == 1 ? 1 : (int)Math.Min(count, 4L * cores);
        if (ranges == 1) { body(0, count); return; }
        HostTeam.For(ranges, r => body((int)(count * r / ranges), (int)(count * (r + 1) / ranges)));
    }

    /// <summary>Below this many element operations a parallel loop costs more than it saves.</summary>
    const long SerialWork = 1 << 15;

    /// <summary>A per-thread pinned buffer of at least <paramref name="length"/> floats, grown only when a larger shape
    /// comes (steady-state steps allocate nothing).</summary>
    public static float* Scratch(ref float[]? buffer, int length)
    {
        // 16 floats more, to start at a 64-byte boundary: a 512-bit load across two cache lines costs two.
        if (buffer == null || buffer.Length < length + 16) buffer = GC.AllocateUninitializedArray<float>(Math.Max(length, 64) + 16, pinned: true);
        return Aligned(buffer);
    }

    /// <summary>The first 64-byte boundary in a pinned array (at most 15 floats in).</summary>
    public static float* Aligned(float[] pinned) =>
        (float*)(((nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned)) + 63) & ~(nint)63);

    /// <summary>a·b + c, fused where the hardware has FMA (the choice is a JIT constant: one machine, one rounding).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : a * b + c;

    /// <summary>The sum of the eight lanes in a fixed order: ((0+4)+(2+6)) + ((1+5)+(3+7)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> v)
    {
        var q = v.GetLower() + v.GetUpper();
        var h = q + Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1));
        return h.GetElement(0) + h.GetElement(1);
    }
}
