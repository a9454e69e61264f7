using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// y = x·Wᵀ + b in float32 on an AVX2/FMA CPU, for the few rows of x that a decode step has (one per running
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
/// </summary>
internal static unsafe class SmallBatchGemm
{
    /// <summary>True where the kernel can run (x86-64 with AVX2 and FMA).</summary>
    public static bool Supported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>x [M, K] · weight [N, K]ᵀ (+ bias [N]) → [M, N]; all float32, CPU, weight and bias contiguous; any M.
    /// The columns are computed in chunks by <paramref name="team"/>'s threads (the calling thread alone when null).</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, GemmTeam? team)
    {
        int m = (int)x.shape[0], k = (int)x.shape[1], n = (int)weight.shape[0];
        using var xc = x.contiguous(); // a new handle on the same storage when x already is
        var y = empty(m, n, ScalarType.Float32);
        var px = (nint)TensorData.Floats(xc);
        bool bf16 = weight.dtype == ScalarType.BFloat16;
        var pw = bf16 ? (nint)TensorData.BFloat16s(weight) : (nint)TensorData.Floats(weight);
        var py = (nint)TensorData.Floats(y);
        var pb = bias is null ? 0 : (nint)TensorData.Floats(bias);
        int chunks = (n + ChunkColumns - 1) / ChunkColumns;
        // More rows (a long prefill) go in slices of ChunkRows, each one pass over the weights: with that many rows
        // the arithmetic outweighs reading the weights again, and each slice of x stays near the cores.
        for (int r0 = 0; r0 < m; r0 += ChunkRows)
        {
            int rows = Math.Min(ChunkRows, m - r0);
            nint xs = px + (nint)r0 * k * sizeof(float), ys = py + (nint)r0 * n * sizeof(float);
            void Chunk(int c) =>
                Rows((float*)xs, rows, k, (void*)pw, bf16, n, (float*)ys, (float*)pb, c * ChunkColumns, Math.Min(n, (c + 1) * ChunkColumns));
            GemmTeam.Run(team, chunks, Chunk);
        }
        return y;
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
    /// accumulators, so that the FMA unit's latency is hidden and each weight vector loaded serves three rows), then
    /// a 4×2 or 4×1 block for the last rows. <paramref name="w"/> holds float32 values, or bfloat16 ones when
    /// <paramref name="bf16"/>: then each block of four weight rows (or a last single row) is first widened into this
    /// thread's buffer and multiplied from there, the same sums in the same order; one row of x (a single stream's
    /// decode step) instead widens each vector in registers as it multiplies it, since that step only streams the
    /// weights and a round trip through the buffer would cost as much as the read.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Rows(float* x, int m, int k, void* w, bool bf16, int n, float* y, float* bias, int j0, int j1)
    {
        int elementBytes = bf16 ? sizeof(ushort) : sizeof(float);
        int blockFloats = 4 * k * elementBytes / sizeof(float);   // a block's bytes, in floats (for the prefetch)
        float* buf = bf16 ? WidenBuffer(4 * k) : null;
        int j = j0;
        int passes = (m + 2) / 3;
        for (; j + 4 <= j1; j += 4)
        {
            byte* source = (byte*)w + (long)j * k * elementBytes;
            float* next = (float*)(source + 4L * k * elementBytes);
            float* bj = bias == null ? null : bias + j;
            if (bf16 && m == 1 && k % 8 == 0)
            {
                Block4x1BFloat16((ushort*)source, k, x, y + j, bj, j + 8 <= j1 ? (byte*)next : null);
                continue;
            }
            float* wj = (float*)source;
            if (bf16) Widen((ushort*)source, wj = buf, 4 * k);
            // The next block's 4 rows are contiguous: while this block is multiplied with every row of x, fetch
            // a share of them per pass, so that memory reads overlap the arithmetic (the hardware prefetcher
            // alone left the kernel waiting on memory between blocks).
            bool prefetch = passes > 1 && j + 8 <= j1;
            int share = (blockFloats + passes - 1) / passes;
            int i = 0, pass = 0;
            for (; i + 3 <= m; i += 3, pass++)
            {
                if (prefetch) Prefetch(next + (long)pass * share, share);
                Block4x3(wj, k, x + (long)i * k, y + (long)i * n + j, n, bj);
            }
            if (i < m && prefetch) Prefetch(next + (long)pass * share, Math.Max(0, blockFloats - pass * share));
            if (i + 2 == m) Block4x2(wj, k, x + (long)i * k, y + (long)i * n + j, n, bj);
            else if (i + 1 == m) Block4x1(wj, k, x + (long)i * k, y + (long)i * n + j, bj);
        }
        for (; j < j1; j++)
        {
            float* wj = (float*)w + (long)j * k;
            if (bf16) Widen((ushort*)w + (long)j * k, wj = buf, k);
            for (int i = 0; i < m; i++)
                y[(long)i * n + j] = Dot(wj, x + (long)i * k, k) + (bias == null ? 0f : bias[j]);
        }
    }

    /// <summary><see cref="Block4x1"/> reading bfloat16 weights, widened in registers (k a multiple of 8: no tail, so
    /// <see cref="Finish"/> never reads the weights); the same sums in the same order.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block4x1BFloat16(ushort* w, int k, float* x0, float* y, float* bias, byte* next)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        ushort* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        for (int p = 0; p < k; p += 8)
        {
            // The next block (4k bf16 = k/8 cache lines) one line per iteration, so that the reads stay spread out.
            if (next != null) Sse.Prefetch0(next + p * 8);
            var v0 = Avx.LoadVector256(x0 + p);
            a0 = Fma.MultiplyAdd(Wide(w + p), v0, a0);
            a1 = Fma.MultiplyAdd(Wide(w1 + p), v0, a1);
            a2 = Fma.MultiplyAdd(Wide(w2 + p), v0, a2);
            a3 = Fma.MultiplyAdd(Wide(w3 + p), v0, a3);
        }
        y[0] = Finish(a0, null, x0, k, k, bias, 0); y[1] = Finish(a1, null, x0, k, k, bias, 1);
        y[2] = Finish(a2, null, x0, k, k, bias, 2); y[3] = Finish(a3, null, x0, k, k, bias, 3);
    }

    /// <summary>Eight bfloat16 values as float32 (each one's 16 bits become the float's top half; exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Wide(ushort* from) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(from), 16).AsSingle();

    /// <summary>bfloat16 → float32 (the 16 bits become the float's top half; exact).</summary>
    private static void Widen(ushort* from, float* to, int count)
    {
        int p = 0;
        for (; p + 8 <= count; p += 8) Avx.Store(to + p, Wide(from + p));
        for (; p < count; p++) ((uint*)to)[p] = (uint)from[p] << 16;
    }

    [ThreadStatic] private static float[]? _widened;

    /// <summary>This thread's widening buffer, at least <paramref name="floats"/> long. Pinned: it was allocated on the
    /// pinned object heap and never moves.</summary>
    private static float* WidenBuffer(int floats)
    {
        if (_widened is null || _widened.Length < floats) _widened = GC.AllocateUninitializedArray<float>(floats, pinned: true);
        return (float*)Unsafe.AsPointer(ref _widened[0]);
    }

    private static void Prefetch(float* from, int floats)
    {
        for (int p = 0; p < floats; p += 16) Sse.Prefetch0(from + p);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block4x3(float* w, int k, float* x0, float* y, int ldy, float* bias)
    {
        Vector256<float> a00 = default, a01 = default, a02 = default, a10 = default, a11 = default, a12 = default,
                         a20 = default, a21 = default, a22 = default, a30 = default, a31 = default, a32 = default;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k, x1 = x0 + k, x2 = x1 + k;
        int kv = k & ~7;
        for (int p = 0; p < kv; p += 8)
        {
            var v0 = Avx.LoadVector256(x0 + p);
            var v1 = Avx.LoadVector256(x1 + p);
            var v2 = Avx.LoadVector256(x2 + p);
            var r = Avx.LoadVector256(w + p);
            a00 = Fma.MultiplyAdd(r, v0, a00); a01 = Fma.MultiplyAdd(r, v1, a01); a02 = Fma.MultiplyAdd(r, v2, a02);
            r = Avx.LoadVector256(w1 + p);
            a10 = Fma.MultiplyAdd(r, v0, a10); a11 = Fma.MultiplyAdd(r, v1, a11); a12 = Fma.MultiplyAdd(r, v2, a12);
            r = Avx.LoadVector256(w2 + p);
            a20 = Fma.MultiplyAdd(r, v0, a20); a21 = Fma.MultiplyAdd(r, v1, a21); a22 = Fma.MultiplyAdd(r, v2, a22);
            r = Avx.LoadVector256(w3 + p);
            a30 = Fma.MultiplyAdd(r, v0, a30); a31 = Fma.MultiplyAdd(r, v1, a31); a32 = Fma.MultiplyAdd(r, v2, a32);
        }
        Store4(y, a00, a10, a20, a30, w, x0, kv, k, bias);
        Store4(y + ldy, a01, a11, a21, a31, w, x1, kv, k, bias);
        Store4(y + 2 * ldy, a02, a12, a22, a32, w, x2, kv, k, bias);
    }

    /// <summary>One row of x against the block's 4 weight rows: finishes the four sums into y[0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4(float* y, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3,
                               float* w, float* x, int kv, int k, float* bias)
    {
        y[0] = Finish(a0, w, x, kv, k, bias, 0); y[1] = Finish(a1, w + k, x, kv, k, bias, 1);
        y[2] = Finish(a2, w + 2 * k, x, kv, k, bias, 2); y[3] = Finish(a3, w + 3 * k, x, kv, k, bias, 3);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block4x2(float* w, int k, float* x0, float* y, int ldy, float* bias)
    {
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default,
                         a20 = default, a21 = default, a30 = default, a31 = default;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k, x1 = x0 + k;
        int kv = k & ~7;
        for (int p = 0; p < kv; p += 8)
        {
            var v0 = Avx.LoadVector256(x0 + p);
            var v1 = Avx.LoadVector256(x1 + p);
            var r = Avx.LoadVector256(w + p);
            a00 = Fma.MultiplyAdd(r, v0, a00); a01 = Fma.MultiplyAdd(r, v1, a01);
            r = Avx.LoadVector256(w1 + p);
            a10 = Fma.MultiplyAdd(r, v0, a10); a11 = Fma.MultiplyAdd(r, v1, a11);
            r = Avx.LoadVector256(w2 + p);
            a20 = Fma.MultiplyAdd(r, v0, a20); a21 = Fma.MultiplyAdd(r, v1, a21);
            r = Avx.LoadVector256(w3 + p);
            a30 = Fma.MultiplyAdd(r, v0, a30); a31 = Fma.MultiplyAdd(r, v1, a31);
        }
        Store4(y, a00, a10, a20, a30, w, x0, kv, k, bias);
        Store4(y + ldy, a01, a11, a21, a31, w, x1, kv, k, bias);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see ChunkColumns
    private static void Block4x1(float* w, int k, float* x0, float* y, float* bias)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        int kv = k & ~7;
        for (int p = 0; p < kv; p += 8)
        {
            var v0 = Avx.LoadVector256(x0 + p);
            a0 = Fma.MultiplyAdd(Avx.LoadVector256(w + p), v0, a0);
            a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + p), v0, a1);
            a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + p), v0, a2);
            a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + p), v0, a3);
        }
        Store4(y, a0, a1, a2, a3, w, x0, kv, k, bias);
    }

    private static float Dot(float* w, float* x, int k)
    {
        Vector256<float> a = default;
        int kv = k & ~7;
        for (int p = 0; p < kv; p += 8) a = Fma.MultiplyAdd(Avx.LoadVector256(w + p), Avx.LoadVector256(x + p), a);
        return Finish(a, w, x, kv, k, null, 0);
    }

    /// <summary>The one order every output element is summed in: 8 lanes, then the tail, then the bias.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish(Vector256<float> acc, float* w, float* x, int kv, int k, float* bias, int j)
    {
        var s = Sse.Add(acc.GetLower(), acc.GetUpper());
        s = Sse.Add(s, Sse.MoveHighToLow(s, s));
        s = Sse.AddScalar(s, Sse.Shuffle(s, s, 0x55));
        float sum = s.ToScalar();
        for (int p = kv; p < k; p++) sum += w[p] * x[p];
        return bias == null ? sum : sum + bias[j];
    }
}
