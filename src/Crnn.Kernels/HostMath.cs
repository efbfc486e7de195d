using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static Crnn.Kernels.HostMemory;

namespace Crnn.Kernels;

/// <summary>
/// exp, sigmoid and tanh on eight lanes for the host LSTM recurrence, where the scalar functions cost as much as
/// the recurrent product. exp is Cephes' expf (range reduction by ln 2, degree-6 polynomial, 2ⁿ through the
/// exponent bits): within 2 ulp of the exact value over the clamped range.
/// </summary>
internal static class HostMath
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-87.3f)), Vector256.Create(88.7f));
        // Fused multiply-adds where the CPU has them: half the instructions, and each step rounds once.
        var n = Vector256.Floor(MultiplyAdd(x, Vector256.Create(1.44269504f), Vector256.Create(0.5f)));
        var r = MultiplyAdd(n, Vector256.Create(2.12194440e-4f), MultiplyAdd(n, Vector256.Create(-0.693359375f), x));
        var p = Vector256.Create(1.9875691500e-4f);
        p = MultiplyAdd(p, r, Vector256.Create(1.3981999507e-3f));
        p = MultiplyAdd(p, r, Vector256.Create(8.3334519073e-3f));
        p = MultiplyAdd(p, r, Vector256.Create(4.1665795894e-2f));
        p = MultiplyAdd(p, r, Vector256.Create(1.6666665459e-1f));
        p = MultiplyAdd(p, r, Vector256.Create(5.0000001201e-1f));
        var e = MultiplyAdd(p, r * r, r + Vector256<float>.One);
        // Multiply by 2ⁿ: add n to the exponent field.
        var scale = (Vector256.ConvertToInt32(n) + Vector256.Create(127)) << 23;
        return e * scale.AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Sigmoid(Vector256<float> x) => Vector256<float>.One / (Vector256<float>.One + Exp(-x));

    /// <summary>tanh x = 2·σ(2x) − 1 (absolute error a few 1e-8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Tanh(Vector256<float> x) => Vector256.Create(2f) * Sigmoid(x + x) - Vector256<float>.One;
}
