using System.Buffers;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// Causal attention of a step's tokens (decode tokens and prefill chunks alike) in float32 on an AVX2 CPU, read
/// straight from the sequences' blocks of the KV pool.
/// <para>
/// Written by hand because the libtorch path first gathers every sequence's keys and values into a padded copy and
/// then runs masked SDPA calls: at 16 streams of the 0.5B shape that was 48 ms of a 361 ms decode step (2 ms a
/// layer, on the one thread libtorch keeps beside the projection kernel) for about 0.5 MFLOP a layer, and 63 ms of
/// a 649 ms step prefilling 64 tokens. Here each (token, KV head) pair is one task for the <see cref="GemmTeam"/>:
/// the token's query heads that share the KV head are scored against the keys of positions 0..its own, softmaxed,
/// and summed over the values.
/// </para>
/// <para>
/// Each token is computed on its own, in one fixed order (positions in order; 8 lanes of the head dimension, then
/// their sum), so its result depends neither on the other sequences of the step nor on whether the token is
/// decoded or prefilled (a preempted sequence's recompute gives the same bits).
/// </para>
/// </summary>
internal static unsafe class PagedAttention
{
    /// <summary>Whether this kernel can run: an AVX2/FMA CPU and a head size that is a multiple of 8.</summary>
    public static bool Supports(int headDim) => SmallBatchGemm.Supported && headDim % 8 == 0;

    /// <param name="q">[N, heads, D]: the queries of the step's N tokens (contiguous float32).</param>
    /// <param name="keys">The layer's keys in the pool, [slots, kv_heads, D], the new tokens' already written.</param>
    /// <param name="values">The layer's values, laid out as <paramref name="keys"/>.</param>
    /// <param name="tables">Per token, its sequence's block table.</param>
    /// <param name="lengths">Per token, how many positions it attends to (its own position + 1).</param>
    /// <returns>[N, heads * D]: each query head's attention output, heads in order.</returns>
    public static Tensor Run(Tensor q, Tensor keys, Tensor values, int[][] tables, int[] lengths, int blockSize,
                             int heads, int kvHeads, int headDim, GemmTeam? team)
    {
        int n = tables.Length;
        var output = empty(n, (long)heads * headDim, ScalarType.Float32);
        var job = new Job
        {
            Q = TensorData.Floats(q), K = TensorData.Floats(keys), V = TensorData.Floats(values), Out = TensorData.Floats(output),
            Tables = tables, Lengths = lengths, BlockSize = blockSize, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
        };
        int tasks = n * kvHeads;
        GemmTeam.Run(team, tasks, job.Task);
        return output;
    }

    private sealed class Job
    {
        public float* Q, K, V, Out;
        public int[][] Tables = [];
        public int[] Lengths = [];
        public int BlockSize, Heads, KvHeads, HeadDim;

        /// <summary>Token task / KvHeads, KV head task % KvHeads: its query heads g*groups .. (g+1)*groups-1.</summary>
        public void Task(int task)
        {
            int s = task / KvHeads, g = task % KvHeads, d = HeadDim, groups = Heads / KvHeads, len = Lengths[s];
            int[] table = Tables[s];
            float scale = 1f / MathF.Sqrt(d);
            float* q = Q + ((long)s * Heads + (long)g * groups) * d;
            float* o = Out + ((long)s * Heads + (long)g * groups) * d;
            long rowStride = (long)KvHeads * d;
            var rented = ArrayPool<float>.Shared.Rent(groups * len);
            var rows = ArrayPool<nint>.Shared.Rent(len);
            try
            {
                fixed (float* p = rented)
                {
                    for (int t = 0; t < len; t++) rows[t] = (nint)(KvBlockTable.Slot(table, BlockSize, t) * rowStride + (long)g * d);
                    Scores(q, groups, d, K, rows, len, p, scale);
                    // Softmax per query head: subtract the max, exponentiate; the sum divides at the end.
                    var inverse = stackalloc float[groups];
                    for (int j = 0; j < groups; j++) inverse[j] = 1f / ExpInPlace(p + j * len, len);
                    for (int j = 0; j < groups; j++) WeightedSum(p + j * len, V, rows, len, d, o + j * d, inverse[j]);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
                ArrayPool<nint>.Shared.Return(rows);
            }
        }
    }

    /// <summary>p[j*len + t] = scale · q_j · k_t for the group's query heads j and positions t; four positions at a
    /// time, so that four independent FMA chains hide the FMA latency.</summary>
    private static void Scores(float* q, int groups, int d, float* k, nint[] rows, int len, float* p, float scale)
    {
        int t = 0;
        for (; t + 4 <= len; t += 4)
        {
            float* k0 = k + rows[t], k1 = k + rows[t + 1], k2 = k + rows[t + 2], k3 = k + rows[t + 3];
            for (int j = 0; j < groups; j++)
            {
                float* qj = q + j * d;
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int i = 0; i < d; i += 8)
                {
                    var qv = Avx.LoadVector256(qj + i);
                    a0 = Fma.MultiplyAdd(qv, Avx.LoadVector256(k0 + i), a0);
                    a1 = Fma.MultiplyAdd(qv, Avx.LoadVector256(k1 + i), a1);
                    a2 = Fma.MultiplyAdd(qv, Avx.LoadVector256(k2 + i), a2);
                    a3 = Fma.MultiplyAdd(qv, Avx.LoadVector256(k3 + i), a3);
                }
                float* pj = p + j * len + t;
                pj[0] = Vector256.Sum(a0) * scale; pj[1] = Vector256.Sum(a1) * scale;
                pj[2] = Vector256.Sum(a2) * scale; pj[3] = Vector256.Sum(a3) * scale;
            }
        }
        for (; t < len; t++)
        {
            float* kt = k + rows[t];
            for (int j = 0; j < groups; j++)
            {
                float* qj = q + j * d;
                var a = Vector256<float>.Zero;
                for (int i = 0; i < d; i += 8) a = Fma.MultiplyAdd(Avx.LoadVector256(qj + i), Avx.LoadVector256(kt + i), a);
                p[j * len + t] = Vector256.Sum(a) * scale;
            }
        }
    }

    /// <summary>x ← exp(x - max x); returns the sum of the new values.</summary>
    private static float ExpInPlace(float* x, int n)
    {
        float max = float.NegativeInfinity;
        for (int i = 0; i < n; i++) max = MathF.Max(max, x[i]);
        var m = Vector256.Create(max);
        var acc = Vector256<float>.Zero;
        int v = n & ~7;
        for (int i = 0; i < v; i += 8)
        {
            var e = Vector256.Exp(Avx.LoadVector256(x + i) - m);
            Avx.Store(x + i, e);
            acc += e;
        }
        float sum = Vector256.Sum(acc);
        for (int i = v; i < n; i++) sum += x[i] = MathF.Exp(x[i] - max);
        return sum;
    }

    /// <summary>o = (Σ_t p_t · v_t) · inverse over d floats: 64 columns at a time in eight registers (each value row
    /// read once per slice), the rest 8 columns at a time.</summary>
    private static void WeightedSum(float* p, float* v, nint[] rows, int len, int d, float* o, float inverse)
    {
        var inv = Vector256.Create(inverse);
        int c = 0;
        for (; c + 64 <= d; c += 64)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            for (int t = 0; t < len; t++)
            {
                float* vt = v + rows[t] + c;
                var pt = Vector256.Create(p[t]);
                a0 = Fma.MultiplyAdd(pt, Avx.LoadVector256(vt), a0);
                a1 = Fma.MultiplyAdd(pt, Avx.LoadVector256(vt + 8), a1);
                a2 = Fma.MultiplyAdd(pt, Avx.LoadVector256(vt + 16), a2);
                a3 = Fma.MultiplyAdd(pt, Avx.LoadVector256(vt + 24), a3);
                a4 = Fma.MultiplyAdd(pt, Avx.LoadVector256(vt + 32), a4);
                a5 = Fma.MultiplyAdd(pt, Avx.LoadVector256(vt + 40), a5);
                a6 = Fma.MultiplyAdd(pt, Avx.LoadVector256(vt + 48), a6);
                a7 = Fma.MultiplyAdd(pt, Avx.LoadVector256(vt + 56), a7);
            }
            Avx.Store(o + c, a0 * inv); Avx.Store(o + c + 8, a1 * inv); Avx.Store(o + c + 16, a2 * inv); Avx.Store(o + c + 24, a3 * inv);
            Avx.Store(o + c + 32, a4 * inv); Avx.Store(o + c + 40, a5 * inv); Avx.Store(o + c + 48, a6 * inv); Avx.Store(o + c + 56, a7 * inv);
        }
        for (; c < d; c += 8)
        {
            var a = Vector256<float>.Zero;
            for (int t = 0; t < len; t++) a = Fma.MultiplyAdd(Vector256.Create(p[t]), Avx.LoadVector256(v + rows[t] + c), a);
            Avx.Store(o + c, a * inv);
        }
    }
}
