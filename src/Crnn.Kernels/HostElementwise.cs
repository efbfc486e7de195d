using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static Crnn.Kernels.HostMemory;

namespace Crnn.Kernels;

/// <summary>
/// The CPU path of <see cref="Activations"/>: 8-wide SIMD host code on the CPU accelerator's memory (see
/// <see cref="HostMemory"/>), in parallel over blocks of elements when there are many. Every element is
/// computed alone, so the result does not depend on the blocks; in-place calls (y = x, dx = dy) are fine.
/// </summary>
internal static unsafe class HostElementwise
{
    const int V = 8;
    /// <summary>Elements per parallel block (a multiple of the vector width).</summary>
    const int Block = 8192;

    /// <summary>body(first, end) over [0, n) in blocks of <see cref="Block"/> elements.</summary>
    static void Blocks(int n, Action<int, int> body) =>
        For((n + Block - 1) / Block, Block, (first, end) => body(first * Block, (int)Math.Min((long)end * Block, n)));

    public static void Forward(int act, float* x, float* y, int n)
    {
        nint px = (nint)x, py = (nint)y;
        Blocks(n, (first, end) => ForwardRange(act, (float*)px, (float*)py, first, end));
    }

    /// <summary>act(v) lane by lane, the same arithmetic as <see cref="Activations.Apply"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Activate(int act, Vector256<float> v)
    {
        var zero = Vector256<float>.Zero;
        return act switch
        {
            1 => Vector256.Max(v, zero),
            2 => v * Vector256.Min(Vector256.Max(v + Vector256.Create(3f), zero), Vector256.Create(6f)) / Vector256.Create(6f),
            3 => Vector256.Min(Vector256.Max(Vector256.Create(0.2f) * v + Vector256.Create(0.5f), zero), Vector256.Create(1f)),
            _ => v,
        };
    }

    /// <summary><see cref="Activate(int, Vector256{float})"/> on sixteen lanes: the same operations, so the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Activate(int act, Vector512<float> v)
    {
        var zero = Vector512<float>.Zero;
        return act switch
        {
            1 => Vector512.Max(v, zero),
            2 => v * Vector512.Min(Vector512.Max(v + Vector512.Create(3f), zero), Vector512.Create(6f)) / Vector512.Create(6f),
            3 => Vector512.Min(Vector512.Max(Vector512.Create(0.2f) * v + Vector512.Create(0.5f), zero), Vector512.Create(1f)),
            _ => v,
        };
    }

    static void ForwardRange(int act, float* x, float* y, int first, int end)
    {
        if (act == 0)
        {
            if (x != y) new ReadOnlySpan<float>(x + first, end - first).CopyTo(new Span<float>(y + first, end - first));
            return;
        }
        int i = first;
        for (; i + V <= end; i += V) Activate(act, Vector256.Load(x + i)).Store(y + i);
        for (; i < end; i++) y[i] = Activations.Apply(act, x[i]);
    }

    public static void Backward(int act, float* x, float* dy, float* dx, int n)
    {
        nint px = (nint)x, pdy = (nint)dy, pdx = (nint)dx;
        Blocks(n, (first, end) => BackwardRange(act, (float*)px, (float*)pdy, (float*)pdx, first, end));
    }

    /// <summary>dx = dy·act'(x), the derivative chosen per lane with the kernel's conventions at the kinks.</summary>
    static void BackwardRange(int act, float* x, float* dy, float* dx, int first, int end)
    {
        int i = first;
        var zero = Vector256<float>.Zero;
        var one = Vector256.Create(1f);
        switch (act)
        {
            case 1:
                for (; i + V <= end; i += V)
                {
                    var d = Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Load(x + i), zero), one, zero);
                    (Vector256.Load(dy + i) * d).Store(dx + i);
                }
                break;
            case 2:
            {
                var three = Vector256.Create(3f);
                var minusThree = Vector256.Create(-3f);
                var two = Vector256.Create(2f);
                var six = Vector256.Create(6f);
                for (; i + V <= end; i += V)
                {
                    var v = Vector256.Load(x + i);
                    var d = (two * v + three) / six;
                    d = Vector256.ConditionalSelect(Vector256.GreaterThan(v, three), one, d);
                    d = Vector256.ConditionalSelect(Vector256.LessThan(v, minusThree), zero, d);
                    (Vector256.Load(dy + i) * d).Store(dx + i);
                }
                break;
            }
            case 3:
            {
                var low = Vector256.Create(-2.5f);
                var high = Vector256.Create(2.5f);
                var slope = Vector256.Create(0.2f);
                for (; i + V <= end; i += V)
                {
                    var v = Vector256.Load(x + i);
                    var d = Vector256.ConditionalSelect(Vector256.GreaterThan(v, low) & Vector256.LessThan(v, high), slope, zero);
                    (Vector256.Load(dy + i) * d).Store(dx + i);
                }
                break;
            }
            default:
                for (; i + V <= end; i += V) Vector256.Load(dy + i).Store(dx + i);
                break;
        }
        for (; i < end; i++) dx[i] = dy[i] * Activations.Derivative(act, x[i]);
    }

    public static void Add(float* a, float* b, float* y, int n)
    {
        nint pa = (nint)a, pb = (nint)b, py = (nint)y;
        Blocks(n, (first, end) =>
        {
            float* sa = (float*)pa, sb = (float*)pb, sy = (float*)py;
            int i = first;
            for (; i + V <= end; i += V) (Vector256.Load(sa + i) + Vector256.Load(sb + i)).Store(sy + i);
            for (; i < end; i++) sy[i] = sa[i] + sb[i];
        });
    }

    /// <summary>y[o, c, i] = act(y[o, c, i]·scale[c] + offset[c]) in place, row by row (a row: one (o, c)); no
    /// <paramref name="scale"/>: a bias add.</summary>
    public static void ScaleShift(float* y, float* scale, float* offset, int outer, int channels, int inner, int act)
    {
        nint py = (nint)y, ps = (nint)scale, pt = (nint)offset;
        For(outer * channels, inner, (first, end) =>
        {
            for (int row = first; row < end; row++)
            {
                int c = row % channels;
                float* r = (float*)py + (long)row * inner;
                ScaleShift(r, r, inner, ps == 0 ? 1f : ((float*)ps)[c], ((float*)pt)[c], act);
            }
        });
    }

    /// <summary>dst[i] = act(src[i]·scale + offset), one fused multiply-add, for one row (src may be dst):
    /// BatchNorm with the running statistics (<see cref="ChannelNorm"/>). Scale 1 and offset 0 give act(src) exactly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaleShift(float* src, float* dst, int n, float scale, float offset, int act)
    {
        var sv = Vector256.Create(scale);
        var tv = Vector256.Create(offset);
        int i = 0;
        for (; i + V <= n; i += V) Activate(act, MultiplyAdd(Vector256.Load(src + i), sv, tv)).Store(dst + i);
        for (; i < n; i++) dst[i] = Activations.Apply(act, MathF.FusedMultiplyAdd(src[i], scale, offset));
    }

    /// <summary>y[b, c, r] = x[b, r, c] for each of <paramref name="batch"/> [rows, cols] matrices.</summary>
    public static void Transpose(float* x, float* y, int batch, int rows, int cols)
    {
        nint px = (nint)x, py = (nint)y;
        For(batch, (long)rows * cols, (first, end) =>
        {
            for (int b = first; b < end; b++)
            {
                float* xb = (float*)px + (long)b * rows * cols, yb = (float*)py + (long)b * rows * cols;
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++) yb[(long)c * rows + r] = xb[(long)r * cols + c];
            }
        });
    }
}
