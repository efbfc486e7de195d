using ILGPU;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>The activations of MODEL.md. Values are the kernel's integer switch, so keep them stable.</summary>
public enum Activation { None = 0, Relu = 1, HardSwish = 2, HardSigmoid = 3 }

/// <summary>Element-wise activations (forward and backward) and the residual add. Each runs the ILGPU
/// kernel (gpu policy) or SIMD host code (host policy, <see cref="HostElementwise"/>).</summary>
public sealed class Activations
{
    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int> _forward;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _backward;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int> _add;

    public Activations(Device device)
    {
        _device = device;
        var acc = device.Accelerator;
        _forward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int>(ForwardKernel);
        _backward = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(BackwardKernel);
        _add = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(AddKernel);
    }

    /// <summary>y = act(x); y may be x (in place).</summary>
    public void Forward(Activation act, ArrayView<float> x, ArrayView<float> y)
    {
        int n = SameLength(x, y);
        if (Host(n)) unsafe { HostElementwise.Forward((int)act, HostMemory.Pointer(x), HostMemory.Pointer(y), n); }
        else if (_device.Launch(nameof(ForwardKernel), n, 4.0 * n, 8.0 * n, out var grid)) _forward(grid, x, y, n, (int)act);
    }

    /// <summary>dx = dy·act'(x), from the pre-activation input x; dx may be dy (in place).</summary>
    public void Backward(Activation act, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx)
    {
        int n = SameLength(x, dy);
        SameLength(x, dx);
        if (Host(n)) unsafe { HostElementwise.Backward((int)act, HostMemory.Pointer(x), HostMemory.Pointer(dy), HostMemory.Pointer(dx), n); }
        else if (_device.Launch(nameof(BackwardKernel), n, 4.0 * n, 12.0 * n, out var grid)) _backward(grid, x, dy, dx, n, (int)act);
    }

    /// <summary>y = a + b (the residual shortcut; its backward passes dy to both inputs unchanged).</summary>
    public void Add(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y)
    {
        int n = SameLength(a, b);
        SameLength(a, y);
        if (Host(n)) unsafe { HostElementwise.Add(HostMemory.Pointer(a), HostMemory.Pointer(b), HostMemory.Pointer(y), n); }
        else if (_device.Launch(nameof(AddKernel), n, n, 12.0 * n, out var grid)) _add(grid, a, b, y, n);
    }

    /// <summary>Whether to run on the host (then after the kernels launched before have finished).</summary>
    bool Host(int n)
    {
        if (!_device.UsesHost) return false;
        HostMemory.Enter(_device, "the element-wise operations");
        return n > 0;
    }

    static int SameLength(ArrayView<float> a, ArrayView<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"element-wise operands differ in length: {a.Length} vs {b.Length}");
        return (int)a.Length;
    }

    public static float Apply(int act, float x) => act switch
    {
        1 => Math.Max(x, 0f),
        2 => x * Math.Min(Math.Max(x + 3f, 0f), 6f) / 6f,
        3 => Math.Min(Math.Max(0.2f * x + 0.5f, 0f), 1f),
        _ => x,
    };

    /// <summary>act'(x); at the kinks the derivative of the right-hand piece (PyTorch/Paddle's convention).</summary>
    public static float Derivative(int act, float x) => act switch
    {
        1 => x > 0f ? 1f : 0f,
        2 => x < -3f ? 0f : x > 3f ? 1f : (2f * x + 3f) / 6f,
        3 => x > -2.5f && x < 2.5f ? 0.2f : 0f,
        _ => 1f,
    };

    static void ForwardKernel(ArrayView<float> x, ArrayView<float> y, int n, int act)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride) y[i] = Apply(act, x[i]);
    }

    static void BackwardKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, int n, int act)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride) dx[i] = dy[i] * Derivative(act, x[i]);
    }

    static void AddKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, int n)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride) y[i] = a[i] + b[i];
    }
}
