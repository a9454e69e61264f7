using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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
/// multiplied with every row of x (x, a few KB per row, stays in L2). The weight rows are split between threads.
/// Every output element is summed in the same order whatever the number of rows, so a sequence's logits do not
/// depend on which others share its step.
/// </summary>
internal static unsafe partial class SmallBatchGemm
{
    /// <summary>True where the kernel can run (x86-64 with AVX2 and FMA).</summary>
    public static bool Supported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>x [M, K] · weight [N, K]ᵀ (+ bias [N]) → [M, N]; all float32, CPU, weight and bias contiguous; any M.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, int threads)
    {
        int m = (int)x.shape[0], k = (int)x.shape[1], n = (int)weight.shape[0];
        using var xc = x.contiguous(); // a new handle on the same storage when x already is
        var y = empty(m, n, ScalarType.Float32);
        var px = (nint)Data(xc);
        var pw = (nint)Data(weight);
        var py = (nint)Data(y);
        var pb = bias is null ? 0 : (nint)Data(bias);
        int blocks = (n + 3) / 4;
        threads = Math.Clamp(threads, 1, Math.Max(1, blocks / 16));
        // More rows (a long prefill) go in slices of ChunkRows, each one pass over the weights: with that many rows
        // the arithmetic outweighs reading the weights again, and each slice of x stays near the cores.
        for (int r0 = 0; r0 < m; r0 += ChunkRows)
        {
            int rows = Math.Min(ChunkRows, m - r0);
            nint xs = px + (nint)r0 * k * sizeof(float), ys = py + (nint)r0 * n * sizeof(float);
            if (threads == 1) Rows((float*)xs, rows, k, (float*)pw, n, (float*)ys, (float*)pb, 0, n);
            else
            {
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
                {
                    int j0 = 4 * (int)((long)blocks * t / threads), j1 = Math.Min(n, 4 * (int)((long)blocks * (t + 1) / threads));
                    Rows((float*)xs, rows, k, (float*)pw, n, (float*)ys, (float*)pb, j0, j1);
                });
            }
        }
        return y;
    }

    /// <summary>Rows of x multiplied against one pass over the weights.</summary>
    public const int ChunkRows = 64;

    private static float* Data(Tensor t) => (float*)THSStorage_data_ptr(t.Handle) + t.storage_offset();

    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSStorage_data_ptr(IntPtr tensor);

    /// <summary>Output columns [j0, j1) for every row of x.</summary>
    private static void Rows(float* x, int m, int k, float* w, int n, float* y, float* bias, int j0, int j1)
    {
        int j = j0;
        int passes = (m + 1) / 2;
        for (; j + 4 <= j1; j += 4)
        {
            float* wj = w + (long)j * k;
            // The next block's 4 rows are contiguous: while this block is multiplied with every row of x, fetch
            // a share of them per pass, so that memory reads overlap the arithmetic (the hardware prefetcher
            // alone left the kernel waiting on memory between blocks).
            bool prefetch = passes > 1 && j + 8 <= j1;
            int share = (4 * k + passes - 1) / passes;
            int i = 0;
            for (; i + 2 <= m; i += 2)
            {
                if (prefetch) Prefetch(wj + 4 * k + (long)(i / 2) * share, share);
                Block4x2(wj, k, x + (long)i * k, y + (long)i * n + j, n, bias == null ? null : bias + j);
            }
            if (i < m)
            {
                if (prefetch) Prefetch(wj + 4 * k + (long)(i / 2) * share, Math.Max(0, 4 * k - (i / 2) * share));
                Block4x1(wj, k, x + (long)i * k, y + (long)i * n + j, bias == null ? null : bias + j);
            }
        }
        for (; j < j1; j++)
            for (int i = 0; i < m; i++)
                y[(long)i * n + j] = Dot(w + (long)j * k, x + (long)i * k, k) + (bias == null ? 0f : bias[j]);
    }

    private static void Prefetch(float* from, int floats)
    {
        for (int p = 0; p < floats; p += 16) Sse.Prefetch0(from + p);
    }

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
        y[0] = Finish(a00, w, x0, kv, k, bias, 0); y[1] = Finish(a10, w1, x0, kv, k, bias, 1);
        y[2] = Finish(a20, w2, x0, kv, k, bias, 2); y[3] = Finish(a30, w3, x0, kv, k, bias, 3);
        y += ldy;
        y[0] = Finish(a01, w, x1, kv, k, bias, 0); y[1] = Finish(a11, w1, x1, kv, k, bias, 1);
        y[2] = Finish(a21, w2, x1, kv, k, bias, 2); y[3] = Finish(a31, w3, x1, kv, k, bias, 3);
    }

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
        y[0] = Finish(a0, w, x0, kv, k, bias, 0); y[1] = Finish(a1, w1, x0, kv, k, bias, 1);
        y[2] = Finish(a2, w2, x0, kv, k, bias, 2); y[3] = Finish(a3, w3, x0, kv, k, bias, 3);
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
