using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace Crnn.Kernels;

/// <summary>
/// Shape and strides of a (batched) matrix product C = alpha·op(A)·op(B) + beta·C.
/// Element (m,k) of A is a[batch·StrideA + m·AM + k·AK]; (k,n) of B is b[batch·StrideB + k·BK + n·BN];
/// (m,n) of C is c[batch·StrideC + m·Ldc + n]. With <see cref="SumBatches"/> set the products of all batch
/// entries are summed into one C (weight gradients over a batch), in a fixed order.
/// </summary>
public struct GemmShape
{
    public int M, N, K, Batch;
    public int AM, AK, BK, BN, Ldc;
    public int StrideA, StrideB, StrideC;
    public int SumBatches;
    public float Alpha, Beta;
    /// <summary>Split-K (set by <see cref="Gemm"/>): each batch entry's K is cut into this many pieces of
    /// <see cref="Gemm.PieceLength"/>, each (tile, batch entry, piece) a separate work unit writing a partial tile;
    /// 0: one work unit per output tile.</summary>
    public int Pieces;
    /// <summary>Where a split product's partial tiles start in the workspace and its tiles' arrival counters
    /// (set by <see cref="Gemm"/>: two products of one launch use disjoint ranges).</summary>
    public int PartialsOffset, ArrivalsOffset;

    /// <summary>Row-major A [M,K] (or [K,M] if transA), B [K,N] (or [N,K] if transB), C [M,N].</summary>
    public static GemmShape RowMajor(int m, int n, int k, bool transA = false, bool transB = false,
        float alpha = 1f, float beta = 0f) => new()
    {
        M = m, N = n, K = k, Batch = 1,
        AM = transA ? 1 : k, AK = transA ? m : 1,
        BK = transB ? 1 : n, BN = transB ? k : 1,
        Ldc = n, Alpha = alpha, Beta = beta,
    };

    /// <summary>The same product repeated over <paramref name="batch"/> matrices at the given element strides.</summary>
    public readonly GemmShape Batched(int batch, int strideA, int strideB, int strideC, bool sumBatches = false)
    {
        var s = this;
        s.Batch = batch; s.StrideA = strideA; s.StrideB = strideB; s.StrideC = strideC;
        s.SumBatches = sumBatches ? 1 : 0;
        return s;
    }

    public readonly long Flops => 2L * M * N * K * Batch;

    /// <summary>No output: nothing to compute.</summary>
    public readonly bool IsEmpty => M == 0 || N == 0;
}

/// <summary>One product C = alpha·op(A)·op(B) + beta·C for <see cref="Gemm.Run(GemmProduct, GemmProduct)"/>.</summary>
public readonly record struct GemmProduct(ArrayView<float> A, ArrayView<float> B, ArrayView<float> C, GemmShape Shape)
{
    public bool IsEmpty => Shape.IsEmpty;
}

/// <summary>Matrix products for 1×1 convolutions, the LSTM and the linear head: the shared-memory tiled
/// kernel (gpu policy, 256-thread groups) or the packed SIMD product on the host (<see cref="HostGemm"/>).</summary>
public sealed class Gemm
{
    const int Tile = 64, TileK = 16, TiledGroupSize = 256;
    /// <summary>K values per split-K work unit. A constant, not a function of the grid, so a product's bits
    /// are the same on every device and grid size.</summary>
    public const int PieceLength = 256;
    /// <summary>Products with fewer output tiles than this (weight gradients: 1–16 tiles) and a long K are
    /// split along K, so they spread over a GPU's SMs instead of looping over K on a few of them.</summary>
    public const int SplitBelowTiles = 128;

    readonly Device _device;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<int>, GemmShape, GemmShape> _tiled;

    public Gemm(Device device)
    {
        _device = device;
        _tiled = device.Accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<int>, GemmShape, GemmShape>(TiledKernel);
    }

    public void Run(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s) => Run(new GemmProduct(a, b, c, s), default);

    /// <summary>
    /// Two independent products in one launch under the gpu policy (e.g. a layer's data and weight gradients, which
    /// both read dy): their tiles share the grid, so neither waits for the other's launch. Neither may write what the
    /// other reads. <paramref name="second"/> may be empty (default).
    /// </summary>
    public void Run(GemmProduct first, GemmProduct second)
    {
        Validate(first.A, first.B, first.C, first.Shape);
        if (!second.IsEmpty) Validate(second.A, second.B, second.C, second.Shape);
        if (_device.UsesHost)
        {
            HostMemory.Enter(_device, "GEMM");
            unsafe
            {
                foreach (var p in (ReadOnlySpan<GemmProduct>)[first, second])
                    if (!p.IsEmpty) HostGemm.Run(HostMemory.Pointer(p.A), HostMemory.Pointer(p.B), HostMemory.Pointer(p.C), p.Shape);
            }
            return;
        }
        if (_device.Accelerator.MaxNumThreadsPerGroup < TiledGroupSize)
            throw new NotSupportedException($"the tiled GEMM needs {TiledGroupSize}-thread groups; {_device.Name} allows {_device.Accelerator.MaxNumThreadsPerGroup}");
        if (first.IsEmpty) (first, second) = (second, default);
        if (first.IsEmpty) return;
        var s1 = first.Shape;
        var s2 = second.IsEmpty ? default : second.Shape;
        int partials = 0, arrivals = 0;
        Plan(ref s1, ref partials, ref arrivals);
        Plan(ref s2, ref partials, ref arrivals);
        var workspace = partials > 0 ? _device.Workspace("gemm.split-k", partials) : first.C;
        var counters = _device.Counters("gemm.split-k.arrivals", Math.Max(arrivals, 1));
        long units = Units(s1) + Units(s2);
        double bytes = Bytes(s1) + Bytes(s2) + 8.0 * partials;
        var grid = _device.Groups((int)Math.Min(units, Math.Max(_device.MaxGroups, 1)), TiledGroupSize);
        if (_device.Launch(nameof(TiledKernel), grid, units * TiledGroupSize, s1.Flops + s2.Flops, bytes))
        {
            var p2 = second.IsEmpty ? first : second;
            _tiled(grid, first.A, first.B, first.C, p2.A, p2.B, p2.C, workspace, counters, s1, s2);
        }
    }

    /// <summary>
    /// Split-K where few output tiles meet a long K: each (tile, batch entry, piece) is a work unit writing a partial
    /// tile into the workspace, and the tile's last unit to finish sums them in a fixed order. Places this product's
    /// partials and arrival counters after those already taken.
    /// </summary>
    static void Plan(ref GemmShape s, ref int partials, ref int arrivals)
    {
        if (s.IsEmpty) return;
        int summed = s.SumBatches != 0 ? s.Batch : 1;
        long tiles = (long)Outputs(s) * TilesOf(s);
        bool split = Outputs(s) == 1 && tiles < SplitBelowTiles && (long)summed * s.K >= 2 * PieceLength;
        s.Pieces = split ? (s.K + PieceLength - 1) / PieceLength : 0;
        if (!split) return;
        long length = (long)summed * s.Pieces * s.M * s.N;
        if (partials + length > int.MaxValue) throw new ArgumentException($"split-K partial sums of {length} elements exceed the 2^31 element limit");
        s.PartialsOffset = partials;
        s.ArrivalsOffset = arrivals;
        partials += (int)length;
        arrivals += (int)tiles;
    }

    static int Outputs(GemmShape s) => s.SumBatches != 0 ? 1 : s.Batch;

    static int TilesOf(GemmShape s) => ((s.M + Tile - 1) / Tile) * ((s.N + Tile - 1) / Tile);

    /// <summary>Work units: output tiles, or (tile, batch entry, piece) triples when split.</summary>
    static int Units(GemmShape s) =>
        s.IsEmpty ? 0 : s.Pieces > 0 ? TilesOf(s) * (s.SumBatches != 0 ? s.Batch : 1) * s.Pieces : Outputs(s) * TilesOf(s);

    static double Bytes(GemmShape s) =>
        s.IsEmpty ? 0 : 4.0 * ((double)s.M * s.K + (double)s.K * s.N) * s.Batch + 4.0 * Outputs(s) * s.M * s.N;

    static void Validate(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s)
    {
        if (s.M < 0 || s.N < 0 || s.K < 0 || s.Batch < 1) throw new ArgumentException($"bad GEMM sizes M={s.M} N={s.N} K={s.K} batch={s.Batch}");
        long Last(int stride, int rows, int rs, int cols, int cs) =>
            (long)(s.Batch - 1) * stride + (long)Math.Max(rows - 1, 0) * rs + (long)Math.Max(cols - 1, 0) * cs + 1;
        if (s.K > 0 && Last(s.StrideA, s.M, s.AM, s.K, s.AK) > a.Length) throw new ArgumentException("GEMM reads past the end of A");
        if (s.K > 0 && Last(s.StrideB, s.K, s.BK, s.N, s.BN) > b.Length) throw new ArgumentException("GEMM reads past the end of B");
        int cBatches = s.SumBatches != 0 ? 1 : s.Batch;
        if ((long)(cBatches - 1) * s.StrideC + (long)(s.M - 1) * s.Ldc + s.N > c.Length) throw new ArgumentException("GEMM writes past the end of C");
    }

    /// <summary>Writes one result: beta 0 never reads C, so an uninitialized (NaN) output is fine.</summary>
    static void Store(ArrayView<float> c, int index, float acc, GemmShape s) =>
        c[index] = s.Beta == 0f ? s.Alpha * acc : s.Alpha * acc + s.Beta * c[index];

    /// <summary>GPU shape: a 256-thread group computes a 64×64 tile of C, each thread a 4×4 sub-block at
    /// stride 16 (conflict-free shared reads), staging 16-deep slices of A and B in shared memory. The grid walks
    /// the first product's work units, then the second's (<paramref name="s2"/> may have none).</summary>
    static void TiledKernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c,
        ArrayView<float> a2, ArrayView<float> b2, ArrayView<float> c2,
        ArrayView<float> partials, ArrayView<int> arrivals, GemmShape s, GemmShape s2)
    {
        var sa = SharedMemory.Allocate<float>(TileK * Tile); // [k][m]
        var sb = SharedMemory.Allocate<float>(TileK * Tile); // [k][n]
        var last = SharedMemory.Allocate<int>(1);
        int first = Units(s), total = first + Units(s2);
        for (int t = Grid.IdxX; t < total; t += Grid.DimX)
        {
            if (t < first) TileUnit(a, b, c, partials, arrivals, s, t, sa, sb, last);
            else TileUnit(a2, b2, c2, partials, arrivals, s2, t - first, sa, sb, last);
        }
    }

    /// <summary>Work unit t of one product. With <see cref="GemmShape.Pieces"/> a unit is one (tile, batch entry,
    /// K piece): it writes its raw partial tile to <paramref name="partials"/> [unit, M, N] (from the product's
    /// offset), and the tile's last unit to arrive adds the pieces up into C.</summary>
    static void TileUnit(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> partials,
        ArrayView<int> arrivals, GemmShape s, int t, ArrayView<float> sa, ArrayView<float> sb, ArrayView<int> last)
    {
        int tid = Group.IdxX, threads = Group.DimX;
        int tx = tid % 16, ty = tid / 16;
        int tilesN = (s.N + Tile - 1) / Tile, tiles = TilesOf(s);
        bool split = s.Pieces > 0;
        int unit = t / tiles, rem = t % tiles;
        int m0 = rem / tilesN * Tile, n0 = rem % tilesN * Tile;
        // Which batch entries and which K range this unit sums.
        int bFirst, bEnd, kFirst = 0, kEnd = s.K;
        if (split)
        {
            bFirst = unit / s.Pieces;
            bEnd = bFirst + 1;
            kFirst = unit % s.Pieces * PieceLength;
            kEnd = XMath.Min(s.K, kFirst + PieceLength);
        }
        else
        {
            bFirst = s.SumBatches != 0 ? 0 : unit;
            bEnd = s.SumBatches != 0 ? s.Batch : unit + 1;
        }
        Float4 c0 = default, c1 = default, c2 = default, c3 = default;
        for (int bi = bFirst; bi < bEnd; bi++)
        {
            int offA = bi * s.StrideA, offB = bi * s.StrideB;
            for (int k0 = kFirst; k0 < kEnd; k0 += TileK)
            {
                // Cooperative loads; the fastest-varying index follows the unit stride for coalescing.
                for (int e = tid; e < TileK * Tile; e += threads)
                {
                    int kk = s.AK == 1 ? e % TileK : e / Tile, mm = s.AK == 1 ? e / TileK : e % Tile;
                    int m = m0 + mm, k = k0 + kk;
                    sa[kk * Tile + mm] = m < s.M && k < kEnd ? a[offA + m * s.AM + k * s.AK] : 0f;
                    int kb = s.BK == 1 ? e % TileK : e / Tile, nn = s.BK == 1 ? e / TileK : e % Tile;
                    int n = n0 + nn, k2 = k0 + kb;
                    sb[kb * Tile + nn] = n < s.N && k2 < kEnd ? b[offB + k2 * s.BK + n * s.BN] : 0f;
                }
                Group.Barrier();
                for (int kk = 0; kk < TileK; kk++)
                {
                    int ra = kk * Tile + ty, rb = kk * Tile + tx;
                    var bv = new Float4(sb[rb], sb[rb + 16], sb[rb + 32], sb[rb + 48]);
                    c0 = c0.Fma(sa[ra], bv);
                    c1 = c1.Fma(sa[ra + 16], bv);
                    c2 = c2.Fma(sa[ra + 32], bv);
                    c3 = c3.Fma(sa[ra + 48], bv);
                }
                Group.Barrier();
            }
        }
        if (!split)
        {
            int offC = unit * s.StrideC;
            StoreRow(c, offC, m0 + ty, n0 + tx, 16, c0, s);
            StoreRow(c, offC, m0 + ty + 16, n0 + tx, 16, c1, s);
            StoreRow(c, offC, m0 + ty + 32, n0 + tx, 16, c2, s);
            StoreRow(c, offC, m0 + ty + 48, n0 + tx, 16, c3, s);
            return;
        }
        // Raw partial sums; alpha, beta and the fixed-order sum come from the tile's last unit.
        var raw = new GemmShape { M = s.M, N = s.N, Ldc = s.N, Alpha = 1f };
        int offP = s.PartialsOffset + unit * s.M * s.N;
        StoreRow(partials, offP, m0 + ty, n0 + tx, 16, c0, raw);
        StoreRow(partials, offP, m0 + ty + 16, n0 + tx, 16, c1, raw);
        StoreRow(partials, offP, m0 + ty + 32, n0 + tx, 16, c2, raw);
        StoreRow(partials, offP, m0 + ty + 48, n0 + tx, 16, c3, raw);
        int count = (s.SumBatches != 0 ? s.Batch : 1) * s.Pieces;
        if (!LastToArrive(arrivals, s.ArrivalsOffset + rem, count, last, tid)) return;
        // C[m, n] = alpha·Σ_p partials[p, m, n] (+ beta·C), p in order: the sum's order depends on the shape alone.
        int n2 = s.M * s.N;
        for (int e = tid; e < Tile * Tile; e += threads)
        {
            int m = m0 + e / Tile, n = n0 + e % Tile;
            if (m >= s.M || n >= s.N) continue;
            int i = s.PartialsOffset + m * s.N + n;
            float sum = 0f;
            for (int p = 0; p < count; p++) sum += partials[i + p * n2];
            Store(c, m * s.Ldc + n, sum, s);
        }
    }

    /// <summary>
    /// Whether this group is the last of <paramref name="expected"/> to finish its share of a reduction (the
    /// single-pass reduction of CUDA's threadFenceReduction sample): each thread fences its stores, thread 0 counts
    /// the group in, and the last group resets the counter for the next launch and fences again before it reads
    /// what the others wrote. No group waits for another, so it is safe on any device and any grid.
    /// </summary>
    static bool LastToArrive(ArrayView<int> arrivals, int counter, int expected, ArrayView<int> flag, int tid)
    {
        MemoryFence.DeviceLevel();
        Group.Barrier();
        if (tid == 0)
        {
            bool done = Atomic.Add(ref arrivals[counter], 1) == expected - 1;
            if (done) arrivals[counter] = 0;
            flag[0] = done ? 1 : 0;
        }
        Group.Barrier();
        // Every thread reads the flag before the next unit's barriers let thread 0 write it again.
        bool isLast = flag[0] != 0;
        if (isLast) MemoryFence.DeviceLevel();
        return isLast;
    }

    /// <summary>Stores four results of row m at columns n, n+step, n+2·step, n+3·step, skipping those outside C.</summary>
    static void StoreRow(ArrayView<float> c, int offC, int m, int n, int step, Float4 v, GemmShape s)
    {
        if (m >= s.M) return;
        int row = offC + m * s.Ldc;
        if (n < s.N) Store(c, row + n, v.X, s);
        if (n + step < s.N) Store(c, row + n + step, v.Y, s);
        if (n + 2 * step < s.N) Store(c, row + n + 2 * step, v.Z, s);
        if (n + 3 * step < s.N) Store(c, row + n + 3 * step, v.W, s);
    }
}

/// <summary>Four accumulators kept in registers.</summary>
internal readonly struct Float4(float x, float y, float z, float w)
{
    public readonly float X = x, Y = y, Z = z, W = w;

    /// <summary>this + a·v, element-wise.</summary>
    public Float4 Fma(float a, Float4 v) => new(X + a * v.X, Y + a * v.Y, Z + a * v.Z, W + a * v.W);
}
