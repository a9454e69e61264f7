using System.Buffers;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// Attention of a step's decode tokens (one new token per sequence) in float32 on an AVX2 CPU, read straight from
/// the sequences' blocks of the KV pool.
/// <para>
/// Written by hand because the libtorch path first gathers every sequence's keys and values into a padded
/// [B, L, kv_heads, D] copy and then runs one masked SDPA call: at 16 streams of the 0.5B shape that was 48 ms of
/// a 361 ms step (2 ms a layer, on the one thread libtorch keeps beside the projection kernel), for some 0.5 MFLOP
/// a layer. Here each (sequence, KV head) pair is one task for the <see cref="GemmTeam"/>: the query heads that
/// share the KV head are scored against its keys in place, softmaxed, and summed over its values.
/// </para>
/// <para>
/// Each sequence is computed on its own, in one fixed order (positions in order, 8 lanes of the head dimension
/// then their sum), so its result does not depend on the other sequences of the step, nor on padding.
/// </para>
/// </summary>
internal static unsafe class DecodeAttention
{
    /// <summary>Whether this kernel can run: an AVX2/FMA CPU and a head size that is a multiple of 8.</summary>
    public static bool Supports(int headDim) => SmallBatchGemm.Supported && headDim % 8 == 0;

    /// <param name="q">[B, heads, D]: the queries of the step's B decode tokens (contiguous float32).</param>
    /// <param name="keys">The layer's keys in the pool, [slots, kv_heads, D], the new tokens' already written.</param>
    /// <param name="values">The layer's values, laid out as <paramref name="keys"/>.</param>
    /// <param name="blocks">Per sequence, its block table.</param>
    /// <param name="lengths">Per sequence, the positions it attends to (its cached tokens and the new one).</param>
    /// <returns>[B, heads * D]: each query head's attention output, heads in order.</returns>
    public static Tensor Run(Tensor q, Tensor keys, Tensor values, int[][] blocks, int[] lengths, int blockSize,
                             int heads, int kvHeads, int headDim, GemmTeam? team)
    {
        int b = blocks.Length;
        var output = empty(b, (long)heads * headDim, ScalarType.Float32);
        var job = new Job
        {
            Q = TensorData.Floats(q), K = TensorData.Floats(keys), V = TensorData.Floats(values), Out = TensorData.Floats(output),
            Blocks = blocks, Lengths = lengths, BlockSize = blockSize, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
        };
        int tasks = b * kvHeads;
        if (team is null) for (int i = 0; i < tasks; i++) job.Task(i);
        else team.Run(tasks, job.Task);
        return output;
    }

    private sealed class Job
    {
        public float* Q, K, V, Out;
        public int[][] Blocks = [];
        public int[] Lengths = [];
        public int BlockSize, Heads, KvHeads, HeadDim;

        /// <summary>Sequence task / KvHeads, KV head task % KvHeads: its query heads g*groups .. (g+1)*groups-1.</summary>
        public void Task(int task)
        {
            int s = task / KvHeads, g = task % KvHeads, d = HeadDim, groups = Heads / KvHeads, len = Lengths[s];
            int[] table = Blocks[s];
            float scale = 1f / MathF.Sqrt(d);
            float* q = Q + ((long)s * Heads + (long)g * groups) * d;
            float* o = Out + ((long)s * Heads + (long)g * groups) * d;
            long rowStride = (long)KvHeads * d;
            var scores = ArrayPool<float>.Shared.Rent(groups * len);
            try
            {
                fixed (float* p = scores)
                {
                    // Scores: every query head of the group against each position's key (the key row read once).
                    for (int t = 0; t < len; t++)
                    {
                        float* k = K + Slot(table, t) * rowStride + (long)g * d;
                        for (int j = 0; j < groups; j++) p[j * len + t] = Dot(q + j * d, k, d) * scale;
                    }
                    // Softmax per query head: subtract the max, exponentiate, keep the sum for the end.
                    var inverse = stackalloc float[groups];
                    for (int j = 0; j < groups; j++) inverse[j] = 1f / ExpInPlace(p + j * len, len);
                    // Output: the probabilities' sum over the values (each value row read once), then normalised.
                    new Span<float>(o, groups * d).Clear();
                    for (int t = 0; t < len; t++)
                    {
                        float* v = V + Slot(table, t) * rowStride + (long)g * d;
                        for (int j = 0; j < groups; j++) Axpy(p[j * len + t], v, o + j * d, d);
                    }
                    for (int j = 0; j < groups; j++) Scale(o + j * d, inverse[j], d);
                }
            }
            finally { ArrayPool<float>.Shared.Return(scores); }
        }

        private long Slot(int[] table, int position) => (long)table[position / BlockSize] * BlockSize + position % BlockSize;
    }

    private static float Dot(float* a, float* b, int n)
    {
        var acc = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 8) acc = Fma.MultiplyAdd(Avx.LoadVector256(a + i), Avx.LoadVector256(b + i), acc);
        return Vector256.Sum(acc);
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

    /// <summary>y ← y + a·x over n floats (n a multiple of 8).</summary>
    private static void Axpy(float a, float* x, float* y, int n)
    {
        var av = Vector256.Create(a);
        for (int i = 0; i < n; i += 8) Avx.Store(y + i, Fma.MultiplyAdd(av, Avx.LoadVector256(x + i), Avx.LoadVector256(y + i)));
    }

    private static void Scale(float* y, float a, int n)
    {
        var av = Vector256.Create(a);
        for (int i = 0; i < n; i += 8) Avx.Store(y + i, Avx.LoadVector256(y + i) * av);
    }
}
