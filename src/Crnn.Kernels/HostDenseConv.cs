using System.Runtime.CompilerServices;
using static Crnn.Kernels.HostMemory;

namespace Crnn.Kernels;

/// <summary>
/// The CPU path of <see cref="GroupedConv"/>'s dense forward (the stem: few channels, a 3×3 window): per image, the
/// windows are unrolled into columns (im2col, zeros for the padding), then one packed GEMM
/// W [out, in·k·k] · columns [in·k·k, positions], with the inference epilogue when one is given.
/// </summary>
internal static unsafe class HostDenseConv
{
    [ThreadStatic] static float[]? t_columns;

    public static void Forward(float* x, float* w, float* y, ConvShape s, HostEpilogue epilogue)
    {
        int taps = s.InChannels * s.Kernel * s.Kernel, positions = s.OutHeight * s.OutWidth;
        var gemm = GemmShape.RowMajor(s.OutChannels, positions, taps);
        nint px = (nint)x, pw = (nint)w, py = (nint)y;
        // Images in parallel: one image's GEMM is too small to split.
        For(s.Batch, (long)taps * positions * s.OutChannels, (first, end) =>
        {
            float* columns = Scratch(ref t_columns, taps * positions);
            for (int b = first; b < end; b++)
            {
                Unroll((float*)px + (long)b * s.InChannels * s.Height * s.Width, columns, s);
                HostGemm.Run((float*)pw, columns, (float*)py + (long)b * s.OutChannels * positions, gemm, epilogue, parallel: false);
            }
        });
    }

    /// <summary>columns[(c·k + ky)·k + kx, oy·ow + ox] = x[c, oy·sh − pad + ky, ox·sw − pad + kx], 0 outside.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Unroll(float* x, float* columns, ConvShape s)
    {
        int k = s.Kernel, oh = s.OutHeight, ow = s.OutWidth;
        for (int c = 0; c < s.InChannels; c++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                {
                    float* dst = columns + (long)((c * k + ky) * k + kx) * oh * ow;
                    // The output columns whose window column lies inside the image: [oxFirst, oxEnd); zeros either side.
                    int oxFirst = Math.Min(ow, Math.Max(0, (s.Pad - kx + s.StrideW - 1) / s.StrideW));
                    int lastInside = s.Width - 1 + s.Pad - kx; // ox·sw may not exceed it
                    int oxEnd = lastInside < 0 ? oxFirst : Math.Max(oxFirst, Math.Min(ow, lastInside / s.StrideW + 1));
                    for (int oy = 0; oy < oh; oy++, dst += ow)
                    {
                        int iy = oy * s.StrideH - s.Pad + ky;
                        if (iy < 0 || iy >= s.Height) { new Span<float>(dst, ow).Clear(); continue; }
                        float* row = x + ((long)c * s.Height + iy) * s.Width - s.Pad + kx;
                        for (int ox = 0; ox < oxFirst; ox++) dst[ox] = 0f;
                        for (int ox = oxFirst; ox < oxEnd; ox++) dst[ox] = row[ox * s.StrideW];
                        for (int ox = oxEnd; ox < ow; ox++) dst[ox] = 0f;
                    }
                }
    }
}
