using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static Crnn.Kernels.HostMemory;

namespace Crnn.Kernels;

/// <summary>
/// exp, sigmoid and tanh on eight or sixteen lanes for the host LSTM recurrence, where the scalar functions cost as much
/// as the recurrent product. exp is Cephes' expf (range reduction by ln 2, degree-6 polynomial, 2ⁿ through the
/// exponent bits): within 2 ulp of the exact value over the clamped range. Both widths do the same operations per lane,
/// so they give the same bits.
/// </summary>
internal static class HostMath
{
    const float Low = -87.3f, High = 88.7f, Log2E = 1.44269504f, Ln2High = -0.693359375f, Ln2Low = 2.12194440e-4f,
        P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f, P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(Low)), Vector256.Create(High));
        // Fused multiply-adds where the CPU has them: half the instructions, and each step rounds once.
        var n = Vector256.Floor(MultiplyAdd(x, Vector256.Create(Log2E), Vector256.Create(0.5f)));
        var r = MultiplyAdd(n, Vector256.Create(Ln2Low), MultiplyAdd(n, Vector256.Create(Ln2High), x));
        var p = Vector256.Create(P0);
        p = MultiplyAdd(p, r, Vector256.Create(P1));
        p = MultiplyAdd(p, r, Vector256.Create(P2));
        p = MultiplyAdd(p, r, Vector256.Create(P3));
        p = MultiplyAdd(p, r, Vector256.Create(P4));
        p = MultiplyAdd(p, r, Vector256.Create(P5));
        var e = MultiplyAdd(p, r * r, r + Vector256<float>.One);
        // Multiply by 2ⁿ: add n to the exponent field (n is whole and in range: the machine's conversion, no saturation fix-up).
        return e * ((Vector256.ConvertToInt32Native(n) + Vector256.Create(127)) << 23).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Sigmoid(Vector256<float> x) => Vector256<float>.One / (Vector256<float>.One + Exp(-x));

    /// <summary>tanh x = 2·σ(2x) − 1 (absolute error a few 1e-8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Tanh(Vector256<float> x) => Vector256.Create(2f) * Sigmoid(x + x) - Vector256<float>.One;

    /// <summary><see cref="Exp(Vector256{float})"/> on sixteen lanes (fused multiply-adds: for the AVX-512 machines that run it,
    /// which all have FMA).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(Low)), Vector512.Create(High));
        var n = Vector512.Floor(Vector512.FusedMultiplyAdd(x, Vector512.Create(Log2E), Vector512.Create(0.5f)));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(Ln2Low), Vector512.FusedMultiplyAdd(n, Vector512.Create(Ln2High), x));
        var p = Vector512.Create(P0);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        var e = Vector512.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);
        return e * ((Vector512.ConvertToInt32Native(n) + Vector512.Create(127)) << 23).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Sigmoid(Vector512<float> x) => Vector512<float>.One / (Vector512<float>.One + Exp(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Tanh(Vector512<float> x) => Vector512.Create(2f) * Sigmoid(x + x) - Vector512<float>.One;
}
