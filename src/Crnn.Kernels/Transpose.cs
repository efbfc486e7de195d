using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// Batched matrix transpose [batch, rows, cols] → [batch, cols, rows]. Im2Seq is one ([B, C, 1, T] → [B, T, C])
/// and its backward is the transpose back.
/// </summary>
public sealed class Transpose
{
    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int> _transpose;

    public Transpose(Device device)
    {
        _device = device;
        _transpose = device.Accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(TransposeKernel);
    }

    /// <summary>y[b, c, r] = x[b, r, c]; x and y must not overlap.</summary>
    public void Run(ArrayView<float> x, ArrayView<float> y, int batch, int rows, int cols)
    {
        if (batch < 0 || rows < 0 || cols < 0) throw new ArgumentException($"negative transpose shape [{batch},{rows},{cols}]");
        long n = (long)batch * rows * cols;
        if (x.Length != n || y.Length != n) throw new ArgumentException($"transpose of [{batch},{rows},{cols}] needs {n} elements, got {x.Length} and {y.Length}");
        if (_device.UsesHost)
        {
            if (n == 0) return;
            HostMemory.Enter(_device, "the transpose");
            unsafe { HostElementwise.Transpose(HostMemory.Pointer(x), HostMemory.Pointer(y), batch, rows, cols); }
        }
        else if (_device.Launch(nameof(TransposeKernel), n, 0, 8.0 * n, out var grid))
            _transpose(grid, x, y, batch, rows, cols);
    }

    /// <summary>Indexed by the output so writes are contiguous.</summary>
    static void TransposeKernel(ArrayView<float> x, ArrayView<float> y, int batch, int rows, int cols)
    {
        int n = batch * rows * cols, stride = Grid.DimX * Group.DimX, plane = rows * cols;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            int b = i / plane, rem = i % plane;
            int c = rem / rows, r = rem % rows;
            y[i] = x[b * plane + r * cols + c];
        }
    }
}
