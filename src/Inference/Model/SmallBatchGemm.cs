using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// y = x·Wᵀ + b in float32 on an x86 CPU with AVX2/FMA (256-bit vectors) or AVX-512F (512-bit; <see cref="ISimd{TV}"/>), for the few rows of x that a decode step has (one per running
/// sequence). Written by hand because libtorch's MKL sgemm, given 2–64 rows, first copies (packs) the whole weight
/// matrix and then reads the copy: profiling a 16-stream step of the 0.5B shape showed as many samples in that copy
/// (<c>mkl_blas_def_sgemm_scopy_right4_bdz</c>) as in the multiply kernel, so each weight was read from memory
/// twice and written once. Here each block of four weight rows is read from memory once and, while it sits in L1,
/// multiplied with every row of x (x, a few KB per row, stays in L2). The weight rows go in chunks to the threads
/// of a <see cref="GemmTeam"/>.
/// Every output element is summed in the same order whatever the number of rows, so a sequence's logits do not
/// depend on which others share its step.
/// <para>
/// A bfloat16 weight (the "bfloat16 weights, float32 arithmetic" mode on CPUs without bf16 instructions) is read as
/// such, half the bytes of float32, which is what a memory-bound decode step waits on: each block of four weight rows
/// is widened to float32 into a per-thread buffer (exact: a bf16 value is the top half of its float32) and then
/// multiplied exactly as a float32 block, so the result is bit-identical to the float32 kernel given the widened
/// weights.
/// </para>
/// <para>
/// An int8 weight (<see cref="Int8Matrix"/>, a quarter of float32's bytes) is read the same way: each value becomes
/// q·s (its group's scale) in float32, in the buffer or in registers, and is multiplied as a float32 weight. Activations
/// stay float32: a decode step waits on the weights' bytes, not on the arithmetic.
/// </para>
/// <para>
/// There is no kernel on AVX-512 BF16's <c>vdpbf16ps</c>: .NET 10 has no intrinsic for it, so bf16 is widened (a
/// zero-extending load and a shift per vector) and multiplied in float32. An int8 weight stored in tiles (CPUs with
/// AVX-VNNI) goes to <see cref="Int8TileGemm"/> instead.
/// </para>
/// </summary>
internal static unsafe class SmallBatchGemm
{
    /// <summary>True where the kernel can run (x86-64 with AVX2 and FMA).</summary>
    public static bool Supported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>Whether the 512-bit kernels run: on a CPU with AVX-512F (DOTNET_EnableAVX512=0 turns it off for the
    /// whole process). Tests run both paths on one machine through <see cref="Linear"/>'s <c>wide</c>.</summary>
    public static bool Use512 { get; } = Avx512F.IsSupported;

    /// <summary>The vector width the kernels run at, for logs and benchmarks: "avx512" or "avx2".</summary>
    public static string Isa => Use512 ? "avx512" : "avx2";

    private enum Format { Float32, BFloat16, Int8 }

    /// <summary>A weight matrix as the kernels read it: its format, its rows (<paramref name="RowBytes"/> apart) and,
    /// for int8, the values per scale.</summary>
    private readonly record struct Matrix(Format Format, nint Data, long RowBytes, int Group)
    {
        public byte* Row(int j) => (byte*)Data + j * RowBytes;

        public static Matrix Of(Tensor weight, int k) => weight.dtype switch
        {
            ScalarType.Float32 => new(Format.Float32, (nint)TensorData.Floats(weight), 4L * k, k),
            ScalarType.BFloat16 => new(Format.BFloat16, (nint)TensorData.BFloat16s(weight), 2L * k, k),
            ScalarType.Int8 => new(Format.Int8, (nint)TensorData.Bytes(weight), Int8Matrix.RowBytes(k), Int8Matrix.Layout(weight, k)),
            _ => throw new NotSupportedException($"the CPU kernel reads float32, bfloat16 or int8 weights, not {weight.dtype}"),
        };
    }

    /// <summary>x [M, K] · weight [N, K]ᵀ (+ bias [N]) → [M, N]; x, bias and the result float32, the weight float32,
    /// bfloat16 or a packed <see cref="Int8Matrix"/>, all CPU and contiguous; any M. The columns are computed in chunks
    /// by <paramref name="team"/>'s threads (the calling thread alone when null).</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, GemmTeam? team) => Linear(x, weight, bias, team, Use512);

    /// <summary><see cref="Linear(Tensor, Tensor, Tensor?, GemmTeam?)"/> on the 512-bit kernels (<paramref name="wide"/>, only on
    /// a CPU with AVX-512F) or the 256-bit ones.</summary>
    internal static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, GemmTeam? team, bool wide)
    {
        if (wide && !Avx512F.IsSupported) throw new PlatformNotSupportedException("this CPU has no AVX-512F");
        int m = (int)x.shape[0], k = (int)x.shape[1];
        var shape = weight.shape;   // a native call that allocates: read once per call
        bool tiled = Int8Matrix.Is(weight) && Int8Matrix.IsTiled(shape, k);
        int n = (int)(tiled ? Int8Matrix.Columns(shape, k) : shape[0]);
        using var xc = x.contiguous(); // a new handle on the same storage when x already is
        var y = empty(m, n, ScalarType.Float32);
        var px = (nint)TensorData.Floats(xc);
        var py = (nint)TensorData.Floats(y);
        var pb = bias is null ? 0 : (nint)TensorData.Floats(bias);
        if (tiled)
        {
            TiledInt8(px, m, k, (nint)TensorData.Bytes(weight), n, py, pb, team);
            return y;
        }
        var w = Matrix.Of(weight, k);
        int chunks = (n + ChunkColumns - 1) / ChunkColumns;
        // More rows (a long prefill) go in slices of ChunkRows, each one pass over the weights: with that many rows
        // the arithmetic outweighs reading the weights again, and each slice of x stays near the cores.
        for (int r0 = 0; r0 < m; r0 += ChunkRows)
        {
            int rows = Math.Min(ChunkRows, m - r0);
            nint xs = px + (nint)r0 * k * sizeof(float), ys = py + (nint)r0 * n * sizeof(float);
            void Chunk(int c)
            {
                int j0 = c * ChunkColumns, j1 = Math.Min(n, (c + 1) * ChunkColumns);
                if (wide) Rows<Simd512, Vector512<float>>((float*)xs, rows, k, w, n, (float*)ys, (float*)pb, j0, j1);
                else Rows<Simd256, Vector256<float>>((float*)xs, rows, k, w, n, (float*)ys, (float*)pb, j0, j1);
            }
            GemmTeam.Run(team, chunks, Chunk);
        }
        return y;
    }

    /// <summary>An int8 matrix in tiles (<see cref="Int8TileGemm"/>): the rows of x quantized once on this thread, then
    /// the tiles in chunks of <see cref="ChunkColumns"/> columns to the team, <see cref="ChunkRows"/> rows of x at a time.</summary>
    private static void TiledInt8(nint px, int m, int k, nint pw, int n, nint py, nint pb, GemmTeam? team)
    {
        if (!AvxVnni.IsSupported) throw new PlatformNotSupportedException("an int8 matrix in tiles needs AVX-VNNI");
        var q = Int8TileGemm.Quantize((float*)px, m, k);
        int tiles = n / Int8Matrix.TileColumns, perChunk = ChunkColumns / Int8Matrix.TileColumns;
        int chunks = (tiles + perChunk - 1) / perChunk;
        for (int r0 = 0; r0 < m; r0 += ChunkRows)
        {
            int rows = Math.Min(ChunkRows, m - r0);
            nint ys = py + (nint)r0 * n * sizeof(float);
            int first = r0;
            void Chunk(int c) =>
                Int8TileGemm.Tiles(q, first, rows, (byte*)pw, k, n, (float*)ys, (float*)pb, c * perChunk, Math.Min(tiles, (c + 1) * perChunk));
            GemmTeam.Run(team, chunks, Chunk);
        }
    }

    /// <summary>Output columns (weight rows) a thread takes at a time: small enough that threads finish together,
    /// large enough that taking one costs nothing next to computing it. A multiple of 4 (the block width).
    /// The kernels below each stay a call of their own (NoInlining): when tier-1 PGO inlined the rows of a bf16 weight
    /// and their blocks into the chunk's lambda, a 16-stream step of the 0.5B shape took 513 ms instead of 342 (medians); a
    /// call per block of 4 × K weights costs nothing next to the block.</summary>
    public const int ChunkColumns = 64;

    /// <summary>Rows of x multiplied against one pass over the weights.</summary>
    public const int ChunkRows = 64;

    /// <summary>Output columns [j0, j1) for every row of x: three rows of x at a time (4×3 blocks: twelve
    /// accumulators, so that the FMA unit's latency is hidden and each weight vector loaded serves three rows; six at a
    /// time, 4×6, on 512-bit vectors), then a 4×2 or 4×1 block for the last rows. Each output element is summed in the
    /// same order in every block shape. A bfloat16 or int8 weight's block of four rows (or a last single row) is
    /// first widened to float32 into this thread's buffer and multiplied from there. One row of x (a single stream's
    /// decode step) instead widens each vector in registers as it multiplies it (<see cref="Direct4"/>), the same
    /// sums in the same order, since that step only streams the weights and a round trip through the buffer would cost
    /// as much as the read.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Rows<S, TV>(float* x, int m, int k, Matrix w, int n, float* y, float* bias, int j0, int j1)
        where S : struct, ISimd<TV> where TV : struct
    {
        long blockBytes = 4 * w.RowBytes;
        bool direct = m == 1 && k % S.Count == 0 && w.Group % S.Count == 0;
        // The next block, spread over the direct kernel's iterations: whole cache lines per vector of x.
        int lines = (int)((blockBytes / Math.Max(1, k / S.Count) + 63) / 64);
        float* buf = w.Format == Format.Float32 ? null : WidenBuffer(4 * k);
        int passes = (m + 2) / 3;
        long share = (blockBytes + passes - 1) / passes;
        int j = j0;
        // Several rows of bf16 weights on 512-bit vectors: eight weight rows against three rows of x at a time,
        // widened in registers, without the float32 buffer (see Block8x3BFloat16); one row of x at a time for the last.
        if (S.Count == 16 && m > 1 && w.Format == Format.BFloat16 && k % S.Count == 0)
        {
            long block8 = 8 * w.RowBytes;
            int calls = (m + 2) / 3;
            long part = (block8 + calls - 1) / calls;
            for (; j + 8 <= j1; j += 8)
            {
                byte* src = w.Row(j);
                byte* ahead = j + 16 <= j1 ? src + block8 : null;
                float* bj = bias == null ? null : bias + j;
                int i = 0, c = 0;
                for (; i + 3 <= m; i += 3, c++)
                {
                    if (ahead != null) Prefetch(ahead + c * part, part);
                    Block8x3BFloat16<S, TV>((ushort*)src, k, x + (long)i * k, y + (long)i * n + j, n, bj);
                }
                for (; i < m; i++, c++)
                {
                    if (ahead != null) Prefetch(ahead + c * part, part);
                    Direct8<S, TV, BFloat16Rows<S, TV>>(src, w.RowBytes, k, x + (long)i * k, y + (long)i * n + j, bj, null);
                }
            }
        }
        // One row of float32 or bfloat16 weights: eight weight rows at a time (see Direct8).
        if (direct && w.Format != Format.Int8)
            for (; j + 8 <= j1; j += 8)
            {
                byte* ahead = j + 16 <= j1 ? w.Row(j + 8) : null;
                float* bj = bias == null ? null : bias + j;
                if (w.Format == Format.BFloat16) Direct8<S, TV, BFloat16Rows<S, TV>>(w.Row(j), w.RowBytes, k, x, y + j, bj, ahead);
                else Direct8<S, TV, Float32Rows<S, TV>>(w.Row(j), w.RowBytes, k, x, y + j, bj, ahead);
            }
        for (; j + 4 <= j1; j += 4)
        {
            byte* source = w.Row(j);
            byte* next = j + 8 <= j1 ? source + blockBytes : null;
            float* bj = bias == null ? null : bias + j;
            if (direct)
            {
                Direct4<S, TV>(w, source, k, x, y + j, bj, next, lines);
                continue;
            }
            float* wj = w.Format == Format.Float32 ? (float*)source : Widen<S, TV>(w, source, 4, k, buf);
            // The next block's 4 rows are contiguous: while this block is multiplied with every row of x, fetch
            // a share of them per pass, so that memory reads overlap the arithmetic (the hardware prefetcher
            // alone left the kernel waiting on memory between blocks).
            bool prefetch = passes > 1 && next != null;
            int i = 0, pass = 0;
            // 512-bit vectors have 32 registers: six rows of x at a time (24 accumulators) load each weight vector once
            // for six rows instead of three; 16 streams decoded 8-14% faster and a 512-token prefill 10-30% (medians
            // of 2, same sitting). 256-bit ones have 16 registers: 4×3 is the most that fits.
            if (S.Count == 16)
                for (; i + 6 <= m; i += 6, pass += 2)
                {
                    if (prefetch) Prefetch(next + pass * share, 2 * share);
                    Block4x6<S, TV>(wj, k, x + (long)i * k, y + (long)i * n + j, n, bj);
                }
            // Four rows left (16 streams: 6 + 6 + 4) go as one 4×4 block rather than 4×3 and 4×1, which read the weight
            // block twice and load four weight vectors for each row of the 4×1: a model's worth of bf16 matrices at 16
            // rows took 90–94 against 97–115 ms (same process, medians of 11, three runs).
            if (S.Count == 16 && i + 4 == m)
            {
                if (prefetch) Prefetch(next + pass * share, Math.Max(0, blockBytes - pass * share));
                Block4x4<S, TV>(wj, k, x + (long)i * k, y + (long)i * n + j, n, bj);
                i += 4;
            }
            for (; i + 3 <= m; i += 3, pass++)
            {
                if (prefetch) Prefetch(next + pass * share, share);
                Block4x3<S, TV>(wj, k, x + (long)i * k, y + (long)i * n + j, n, bj);
            }
            if (i < m && prefetch) Prefetch(next + pass * share, Math.Max(0, blockBytes - pass * share));
            if (i + 2 == m) Block4x2<S, TV>(wj, k, x + (long)i * k, y + (long)i * n + j, n, bj);
            else if (i + 1 == m) Block4x1<S, TV>(wj, k, x + (long)i * k, y + (long)i * n + j, bj);
        }
        for (; j < j1; j++)
        {
            float* wj = w.Format == Format.Float32 ? (float*)w.Row(j) : Widen<S, TV>(w, w.Row(j), 1, k, buf);
            for (int i = 0; i < m; i++)
                y[(long)i * n + j] = Dot<S, TV>(wj, x + (long)i * k, k) + (bias == null ? 0f : bias[j]);
        }
    }

    /// <summary>Three rows of x against the eight bf16 weight rows at <paramref name="w"/>, each weight vector widened
    /// in registers as it is read and used for the three rows (24 accumulators: 512-bit vectors only). Against widening
    /// each block of four rows into the float32 buffer and multiplying it from there, a model's worth of bf16 matrices
    /// took 70–78 against 90–91 ms per pass at 16 rows, 329 against 377 at 64 and 36 against 46 at 4 (same process,
    /// medians of 11): the buffer's stores and loads go, and each row of x, which at 16 rows no longer fits L1 beside
    /// the buffers of both threads, is read from L2 once per eight weight rows instead of once per four. The same sums
    /// in the same order as every other block.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block8x3BFloat16<S, TV>(ushort* w, int k, float* x0, float* y, int ldy, float* bias)
        where S : struct, ISimd<TV> where TV : struct
    {
        TV a00 = default, a01 = default, a02 = default, a10 = default, a11 = default, a12 = default,
           a20 = default, a21 = default, a22 = default, a30 = default, a31 = default, a32 = default,
           a40 = default, a41 = default, a42 = default, a50 = default, a51 = default, a52 = default,
           a60 = default, a61 = default, a62 = default, a70 = default, a71 = default, a72 = default;
        float* x1 = x0 + k, x2 = x1 + k;
        for (int p = 0; p < k; p += S.Count)
        {
            var v0 = S.Load(x0 + p); var v1 = S.Load(x1 + p); var v2 = S.Load(x2 + p);
            var r = S.BFloat16(w + p);
            a00 = S.MultiplyAdd(r, v0, a00); a01 = S.MultiplyAdd(r, v1, a01); a02 = S.MultiplyAdd(r, v2, a02);
            r = S.BFloat16(w + k + p);
            a10 = S.MultiplyAdd(r, v0, a10); a11 = S.MultiplyAdd(r, v1, a11); a12 = S.MultiplyAdd(r, v2, a12);
            r = S.BFloat16(w + 2 * k + p);
            a20 = S.MultiplyAdd(r, v0, a20); a21 = S.MultiplyAdd(r, v1, a21); a22 = S.MultiplyAdd(r, v2, a22);
            r = S.BFloat16(w + 3 * k + p);
            a30 = S.MultiplyAdd(r, v0, a30); a31 = S.MultiplyAdd(r, v1, a31); a32 = S.MultiplyAdd(r, v2, a32);
            r = S.BFloat16(w + 4 * k + p);
            a40 = S.MultiplyAdd(r, v0, a40); a41 = S.MultiplyAdd(r, v1, a41); a42 = S.MultiplyAdd(r, v2, a42);
            r = S.BFloat16(w + 5 * k + p);
            a50 = S.MultiplyAdd(r, v0, a50); a51 = S.MultiplyAdd(r, v1, a51); a52 = S.MultiplyAdd(r, v2, a52);
            r = S.BFloat16(w + 6 * k + p);
            a60 = S.MultiplyAdd(r, v0, a60); a61 = S.MultiplyAdd(r, v1, a61); a62 = S.MultiplyAdd(r, v2, a62);
            r = S.BFloat16(w + 7 * k + p);
            a70 = S.MultiplyAdd(r, v0, a70); a71 = S.MultiplyAdd(r, v1, a71); a72 = S.MultiplyAdd(r, v2, a72);
        }
        float* b4 = bias == null ? null : bias + 4;
        Store4<S, TV>(y, a00, a10, a20, a30, null, x0, k, k, bias); Store4<S, TV>(y + 4, a40, a50, a60, a70, null, x0, k, k, b4);
        Store4<S, TV>(y + ldy, a01, a11, a21, a31, null, x1, k, k, bias); Store4<S, TV>(y + ldy + 4, a41, a51, a61, a71, null, x1, k, k, b4);
        Store4<S, TV>(y + 2 * ldy, a02, a12, a22, a32, null, x2, k, k, bias); Store4<S, TV>(y + 2 * ldy + 4, a42, a52, a62, a72, null, x2, k, k, b4);
    }

    /// <summary>Reads <see cref="ISimd{TV}.Count"/> values of a weight row as float32, for <see cref="Direct8"/>.</summary>
    private interface IWeightRows<TV> where TV : struct
    {
        /// <summary>Bytes per value.</summary>
        static abstract int Bytes { get; }
        static abstract TV Read(byte* row, int p);
    }

    private readonly struct Float32Rows<S, TV> : IWeightRows<TV> where S : struct, ISimd<TV> where TV : struct
    {
        public static int Bytes => 4;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Read(byte* row, int p) => S.Load((float*)row + p);
    }

    private readonly struct BFloat16Rows<S, TV> : IWeightRows<TV> where S : struct, ISimd<TV> where TV : struct
    {
        public static int Bytes => 2;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Read(byte* row, int p) => S.BFloat16((ushort*)row + p);
    }

    /// <summary>One row of x against the eight weight rows at <paramref name="w"/>, read and widened in registers (k a
    /// multiple of the vector width), fetching the eight at <paramref name="next"/> (none when null) in step: each 64
    /// bytes read of a row here, the line at the same place in each of the next eight rows. The same sums in the same
    /// order as <see cref="Block4x1"/> on the widened rows. Against four rows at a time with the next block fetched
    /// line after line, one stream's bf16 matrices (a model's worth, each read once per pass) streamed at 40.0–40.6
    /// against 34.4–35.7 GB/s (same process, medians of 11, three runs): eight streams in flight, and the fetches
    /// ahead of each where its reads go next.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Direct8<S, TV, R>(byte* w, long rowBytes, int k, float* x, float* y, float* bias, byte* next)
        where S : struct, ISimd<TV> where TV : struct where R : struct, IWeightRows<TV>
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        byte* w1 = w + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes, w4 = w3 + rowBytes, w5 = w4 + rowBytes, w6 = w5 + rowBytes, w7 = w6 + rowBytes;
        int perLine = 64 / R.Bytes;
        for (int p = 0; p < k; p += S.Count)
        {
            if (next != null && p % perLine == 0)
            {
                long at = (long)p * R.Bytes;
                for (int r = 0; r < 8; r++) Sse.Prefetch0(next + r * rowBytes + at);
            }
            var v = S.Load(x + p);
            a0 = S.MultiplyAdd(R.Read(w, p), v, a0);
            a1 = S.MultiplyAdd(R.Read(w1, p), v, a1);
            a2 = S.MultiplyAdd(R.Read(w2, p), v, a2);
            a3 = S.MultiplyAdd(R.Read(w3, p), v, a3);
            a4 = S.MultiplyAdd(R.Read(w4, p), v, a4);
            a5 = S.MultiplyAdd(R.Read(w5, p), v, a5);
            a6 = S.MultiplyAdd(R.Read(w6, p), v, a6);
            a7 = S.MultiplyAdd(R.Read(w7, p), v, a7);
        }
        Store4<S, TV>(y, a0, a1, a2, a3, null, x, k, k, bias);
        Store4<S, TV>(y + 4, a4, a5, a6, a7, null, x, k, k, bias == null ? null : bias + 4);
    }

    /// <summary>One row of x against the four weight rows at <paramref name="source"/>, read and widened in registers
    /// (k and the int8 group multiples of the vector width: no tail, so <see cref="Finish"/> never reads the weights);
    /// the same sums in the same order as <see cref="Block4x1"/> on the widened block.</summary>
    private static void Direct4<S, TV>(Matrix w, byte* source, int k, float* x, float* y, float* bias, byte* next, int lines)
        where S : struct, ISimd<TV> where TV : struct
    {
        switch (w.Format)
        {
            case Format.Float32: Direct4Float32<S, TV>((float*)source, k, x, y, bias, next, lines); break;
            case Format.BFloat16: Direct4BFloat16<S, TV>((ushort*)source, k, x, y, bias, next, lines); break;
            default: Direct4Int8<S, TV>((sbyte*)source, w.RowBytes, w.Group, k, x, y, bias, next, lines); break;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Direct4Float32<S, TV>(float* w, int k, float* x, float* y, float* bias, byte* next, int lines)
        where S : struct, ISimd<TV> where TV : struct
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        for (int p = 0; p < k; p += S.Count)
        {
            next = PrefetchLines(next, lines);
            var v = S.Load(x + p);
            a0 = S.MultiplyAdd(S.Load(w + p), v, a0);
            a1 = S.MultiplyAdd(S.Load(w1 + p), v, a1);
            a2 = S.MultiplyAdd(S.Load(w2 + p), v, a2);
            a3 = S.MultiplyAdd(S.Load(w3 + p), v, a3);
        }
        Store4<S, TV>(y, a0, a1, a2, a3, null, x, k, k, bias);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Direct4BFloat16<S, TV>(ushort* w, int k, float* x, float* y, float* bias, byte* next, int lines)
        where S : struct, ISimd<TV> where TV : struct
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default;
        ushort* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        for (int p = 0; p < k; p += S.Count)
        {
            next = PrefetchLines(next, lines);
            var v = S.Load(x + p);
            a0 = S.MultiplyAdd(S.BFloat16(w + p), v, a0);
            a1 = S.MultiplyAdd(S.BFloat16(w1 + p), v, a1);
            a2 = S.MultiplyAdd(S.BFloat16(w2 + p), v, a2);
            a3 = S.MultiplyAdd(S.BFloat16(w3 + p), v, a3);
        }
        Store4<S, TV>(y, a0, a1, a2, a3, null, x, k, k, bias);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Direct4Int8<S, TV>(sbyte* w, long rowBytes, int g, int k, float* x, float* y, float* bias, byte* next, int lines)
        where S : struct, ISimd<TV> where TV : struct
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default;
        sbyte* w1 = w + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        float* s0 = (float*)(w + k), s1 = (float*)(w1 + k), s2 = (float*)(w2 + k), s3 = (float*)(w3 + k);
        for (int p0 = 0, gi = 0; p0 < k; p0 += g, gi++)
        {
            TV c0 = S.Splat(s0[gi]), c1 = S.Splat(s1[gi]), c2 = S.Splat(s2[gi]), c3 = S.Splat(s3[gi]);
            for (int p = p0; p < p0 + g; p += S.Count)
            {
                next = PrefetchLines(next, lines);
                var v = S.Load(x + p);
                a0 = S.MultiplyAdd(S.Multiply(S.Int8(w + p), c0), v, a0);
                a1 = S.MultiplyAdd(S.Multiply(S.Int8(w1 + p), c1), v, a1);
                a2 = S.MultiplyAdd(S.Multiply(S.Int8(w2 + p), c2), v, a2);
                a3 = S.MultiplyAdd(S.Multiply(S.Int8(w3 + p), c3), v, a3);
            }
        }
        Store4<S, TV>(y, a0, a1, a2, a3, null, x, k, k, bias);
    }

    /// <summary>Fetches <paramref name="lines"/> cache lines at <paramref name="next"/> (none when null) and returns the
    /// address after them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* PrefetchLines(byte* next, int lines)
    {
        if (next == null) return null;
        for (int l = 0; l < lines; l++) Sse.Prefetch0(next + 64 * l);
        return next + 64 * lines;
    }

    /// <summary><paramref name="rows"/> weight rows at <paramref name="source"/> as float32 in <paramref name="to"/>
    /// ([rows, k]): a bfloat16 value exactly, an int8 one as q·s, the product <see cref="Direct4Int8"/> forms.</summary>
    private static float* Widen<S, TV>(Matrix w, byte* source, int rows, int k, float* to)
        where S : struct, ISimd<TV> where TV : struct
    {
        for (int r = 0; r < rows; r++)
        {
            byte* row = source + r * w.RowBytes;
            float* dst = to + (long)r * k;
            int p = 0;
            if (w.Format == Format.BFloat16)
            {
                ushort* src = (ushort*)row;
                for (; p + S.Count <= k; p += S.Count) S.Store(dst + p, S.BFloat16(src + p));
                for (; p < k; p++) ((uint*)dst)[p] = (uint)src[p] << 16;
            }
            else
            {
                sbyte* src = (sbyte*)row;
                float* scales = (float*)(row + k);
                int g = w.Group;
                if (g % S.Count == 0)
                    for (; p + S.Count <= k; p += S.Count) S.Store(dst + p, S.Multiply(S.Int8(src + p), S.Splat(scales[p / g])));
                for (; p < k; p++) dst[p] = src[p] * scales[p / g];
            }
        }
        return to;
    }

    [ThreadStatic] private static float[]? _widened;

    /// <summary>This thread's widening buffer, at least <paramref name="floats"/> long. Pinned: it was allocated on the
    /// pinned object heap and never moves.</summary>
    private static float* WidenBuffer(int floats)
    {
        if (_widened is null || _widened.Length < floats) _widened = GC.AllocateUninitializedArray<float>(floats, pinned: true);
        return (float*)Unsafe.AsPointer(ref _widened[0]);
    }

    private static void Prefetch(byte* from, long bytes)
    {
        for (long p = 0; p < bytes; p += 64) Sse.Prefetch0(from + p);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block4x6<S, TV>(float* w, int k, float* x0, float* y, int ldy, float* bias)
        where S : struct, ISimd<TV> where TV : struct
    {
        TV a00 = default, a01 = default, a02 = default, a03 = default, a04 = default, a05 = default,
           a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default,
           a20 = default, a21 = default, a22 = default, a23 = default, a24 = default, a25 = default,
           a30 = default, a31 = default, a32 = default, a33 = default, a34 = default, a35 = default;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k, x4 = x3 + k, x5 = x4 + k;
        int kv = k - k % S.Count;
        for (int p = 0; p < kv; p += S.Count)
        {
            var v0 = S.Load(x0 + p); var v1 = S.Load(x1 + p); var v2 = S.Load(x2 + p);
            var v3 = S.Load(x3 + p); var v4 = S.Load(x4 + p); var v5 = S.Load(x5 + p);
            var r = S.Load(w + p);
            a00 = S.MultiplyAdd(r, v0, a00); a01 = S.MultiplyAdd(r, v1, a01); a02 = S.MultiplyAdd(r, v2, a02);
            a03 = S.MultiplyAdd(r, v3, a03); a04 = S.MultiplyAdd(r, v4, a04); a05 = S.MultiplyAdd(r, v5, a05);
            r = S.Load(w1 + p);
            a10 = S.MultiplyAdd(r, v0, a10); a11 = S.MultiplyAdd(r, v1, a11); a12 = S.MultiplyAdd(r, v2, a12);
            a13 = S.MultiplyAdd(r, v3, a13); a14 = S.MultiplyAdd(r, v4, a14); a15 = S.MultiplyAdd(r, v5, a15);
            r = S.Load(w2 + p);
            a20 = S.MultiplyAdd(r, v0, a20); a21 = S.MultiplyAdd(r, v1, a21); a22 = S.MultiplyAdd(r, v2, a22);
            a23 = S.MultiplyAdd(r, v3, a23); a24 = S.MultiplyAdd(r, v4, a24); a25 = S.MultiplyAdd(r, v5, a25);
            r = S.Load(w3 + p);
            a30 = S.MultiplyAdd(r, v0, a30); a31 = S.MultiplyAdd(r, v1, a31); a32 = S.MultiplyAdd(r, v2, a32);
            a33 = S.MultiplyAdd(r, v3, a33); a34 = S.MultiplyAdd(r, v4, a34); a35 = S.MultiplyAdd(r, v5, a35);
        }
        Store4<S, TV>(y, a00, a10, a20, a30, w, x0, kv, k, bias);
        Store4<S, TV>(y + ldy, a01, a11, a21, a31, w, x1, kv, k, bias);
        Store4<S, TV>(y + 2 * ldy, a02, a12, a22, a32, w, x2, kv, k, bias);
        Store4<S, TV>(y + 3 * ldy, a03, a13, a23, a33, w, x3, kv, k, bias);
        Store4<S, TV>(y + 4 * ldy, a04, a14, a24, a34, w, x4, kv, k, bias);
        Store4<S, TV>(y + 5 * ldy, a05, a15, a25, a35, w, x5, kv, k, bias);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block4x4<S, TV>(float* w, int k, float* x0, float* y, int ldy, float* bias)
        where S : struct, ISimd<TV> where TV : struct
    {
        TV a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default,
           a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        int kv = k - k % S.Count;
        for (int p = 0; p < kv; p += S.Count)
        {
            var v0 = S.Load(x0 + p); var v1 = S.Load(x1 + p); var v2 = S.Load(x2 + p); var v3 = S.Load(x3 + p);
            var r = S.Load(w + p);
            a00 = S.MultiplyAdd(r, v0, a00); a01 = S.MultiplyAdd(r, v1, a01); a02 = S.MultiplyAdd(r, v2, a02); a03 = S.MultiplyAdd(r, v3, a03);
            r = S.Load(w1 + p);
            a10 = S.MultiplyAdd(r, v0, a10); a11 = S.MultiplyAdd(r, v1, a11); a12 = S.MultiplyAdd(r, v2, a12); a13 = S.MultiplyAdd(r, v3, a13);
            r = S.Load(w2 + p);
            a20 = S.MultiplyAdd(r, v0, a20); a21 = S.MultiplyAdd(r, v1, a21); a22 = S.MultiplyAdd(r, v2, a22); a23 = S.MultiplyAdd(r, v3, a23);
            r = S.Load(w3 + p);
            a30 = S.MultiplyAdd(r, v0, a30); a31 = S.MultiplyAdd(r, v1, a31); a32 = S.MultiplyAdd(r, v2, a32); a33 = S.MultiplyAdd(r, v3, a33);
        }
        Store4<S, TV>(y, a00, a10, a20, a30, w, x0, kv, k, bias);
        Store4<S, TV>(y + ldy, a01, a11, a21, a31, w, x1, kv, k, bias);
        Store4<S, TV>(y + 2 * ldy, a02, a12, a22, a32, w, x2, kv, k, bias);
        Store4<S, TV>(y + 3 * ldy, a03, a13, a23, a33, w, x3, kv, k, bias);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block4x3<S, TV>(float* w, int k, float* x0, float* y, int ldy, float* bias)
        where S : struct, ISimd<TV> where TV : struct
    {
        TV a00 = default, a01 = default, a02 = default, a10 = default, a11 = default, a12 = default,
           a20 = default, a21 = default, a22 = default, a30 = default, a31 = default, a32 = default;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k, x1 = x0 + k, x2 = x1 + k;
        int kv = k - k % S.Count;
        for (int p = 0; p < kv; p += S.Count)
        {
            var v0 = S.Load(x0 + p);
            var v1 = S.Load(x1 + p);
            var v2 = S.Load(x2 + p);
            var r = S.Load(w + p);
            a00 = S.MultiplyAdd(r, v0, a00); a01 = S.MultiplyAdd(r, v1, a01); a02 = S.MultiplyAdd(r, v2, a02);
            r = S.Load(w1 + p);
            a10 = S.MultiplyAdd(r, v0, a10); a11 = S.MultiplyAdd(r, v1, a11); a12 = S.MultiplyAdd(r, v2, a12);
            r = S.Load(w2 + p);
            a20 = S.MultiplyAdd(r, v0, a20); a21 = S.MultiplyAdd(r, v1, a21); a22 = S.MultiplyAdd(r, v2, a22);
            r = S.Load(w3 + p);
            a30 = S.MultiplyAdd(r, v0, a30); a31 = S.MultiplyAdd(r, v1, a31); a32 = S.MultiplyAdd(r, v2, a32);
        }
        Store4<S, TV>(y, a00, a10, a20, a30, w, x0, kv, k, bias);
        Store4<S, TV>(y + ldy, a01, a11, a21, a31, w, x1, kv, k, bias);
        Store4<S, TV>(y + 2 * ldy, a02, a12, a22, a32, w, x2, kv, k, bias);
    }

    /// <summary>One row of x against the block's 4 weight rows: finishes the four sums into y[0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4<S, TV>(float* y, TV a0, TV a1, TV a2, TV a3, float* w, float* x, int kv, int k, float* bias)
        where S : struct, ISimd<TV> where TV : struct
    {
        y[0] = Finish<S, TV>(a0, w, x, kv, k, bias, 0); y[1] = Finish<S, TV>(a1, w + k, x, kv, k, bias, 1);
        y[2] = Finish<S, TV>(a2, w + 2 * k, x, kv, k, bias, 2); y[3] = Finish<S, TV>(a3, w + 3 * k, x, kv, k, bias, 3);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block4x2<S, TV>(float* w, int k, float* x0, float* y, int ldy, float* bias)
        where S : struct, ISimd<TV> where TV : struct
    {
        TV a00 = default, a01 = default, a10 = default, a11 = default,
           a20 = default, a21 = default, a30 = default, a31 = default;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k, x1 = x0 + k;
        int kv = k - k % S.Count;
        for (int p = 0; p < kv; p += S.Count)
        {
            var v0 = S.Load(x0 + p);
            var v1 = S.Load(x1 + p);
            var r = S.Load(w + p);
            a00 = S.MultiplyAdd(r, v0, a00); a01 = S.MultiplyAdd(r, v1, a01);
            r = S.Load(w1 + p);
            a10 = S.MultiplyAdd(r, v0, a10); a11 = S.MultiplyAdd(r, v1, a11);
            r = S.Load(w2 + p);
            a20 = S.MultiplyAdd(r, v0, a20); a21 = S.MultiplyAdd(r, v1, a21);
            r = S.Load(w3 + p);
            a30 = S.MultiplyAdd(r, v0, a30); a31 = S.MultiplyAdd(r, v1, a31);
        }
        Store4<S, TV>(y, a00, a10, a20, a30, w, x0, kv, k, bias);
        Store4<S, TV>(y + ldy, a01, a11, a21, a31, w, x1, kv, k, bias);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block4x1<S, TV>(float* w, int k, float* x0, float* y, float* bias)
        where S : struct, ISimd<TV> where TV : struct
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        int kv = k - k % S.Count;
        for (int p = 0; p < kv; p += S.Count)
        {
            var v0 = S.Load(x0 + p);
            a0 = S.MultiplyAdd(S.Load(w + p), v0, a0);
            a1 = S.MultiplyAdd(S.Load(w1 + p), v0, a1);
            a2 = S.MultiplyAdd(S.Load(w2 + p), v0, a2);
            a3 = S.MultiplyAdd(S.Load(w3 + p), v0, a3);
        }
        Store4<S, TV>(y, a0, a1, a2, a3, w, x0, kv, k, bias);
    }

    private static float Dot<S, TV>(float* w, float* x, int k) where S : struct, ISimd<TV> where TV : struct
    {
        TV a = default;
        int kv = k - k % S.Count;
        for (int p = 0; p < kv; p += S.Count) a = S.MultiplyAdd(S.Load(w + p), S.Load(x + p), a);
        return Finish<S, TV>(a, w, x, kv, k, null, 0);
    }

    /// <summary>The one order every output element is summed in: the lanes (<see cref="ISimd{TV}.Sum"/>), then the
    /// tail, then the bias.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish<S, TV>(TV acc, float* w, float* x, int kv, int k, float* bias, int j)
        where S : struct, ISimd<TV> where TV : struct
    {
        float sum = S.Sum(acc);
        for (int p = kv; p < k; p++) sum += w[p] * x[p];
        return bias == null ? sum : sum + bias[j];
    }
}
