using System.Runtime.Intrinsics;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// The small per-token operations of a decoder layer (RMSNorm, RoPE with the KV-cache write, SiLU·up), in float32 on
/// the CPU, each as one pass over its rows.
/// <para>
/// Written by hand because, with the projections and decode attention already in hand-written kernels, these were
/// the rest of a step: libtorch runs each as several ops (RMSNorm alone is pow, mean, add, rsqrt, mul, mul), and
/// at a few rows each op costs its ~20 µs of dispatch, not its arithmetic. At 16 streams of the 0.5B shape the
/// norms, the rotary embedding with the two index_copy_ calls, and SiLU·up took 25 ms of a 306 ms step; prefill
/// steps of 64 tokens, 47 ms of 649.
/// </para>
/// <para>
/// The arithmetic is Hugging Face's (RMSNorm in float32: x · rsqrt(mean(x²) + eps) · weight; rotate_half RoPE),
/// row by row in a fixed order, so a row's result does not depend on the other rows of the step.
/// </para>
/// </summary>
internal static unsafe class CpuLayerOps
{
    /// <summary>x [N, H] → x · rsqrt(mean(x²) + eps) · weight, [N, H].</summary>
    public static Tensor RmsNorm(Tensor x, Tensor weight, float eps)
    {
        int n = (int)x.shape[0], h = (int)x.shape[1];
        using var xc = x.contiguous();
        var y = empty(n, h, ScalarType.Float32);
        float* px = TensorData.Floats(xc), pw = TensorData.Floats(weight), py = TensorData.Floats(y);
        int hv = h & ~7;
        for (int r = 0; r < n; r++)
        {
            float* xr = px + (long)r * h, yr = py + (long)r * h;
            var acc = Vector256<float>.Zero;
            for (int i = 0; i < hv; i += 8) { var v = Vector256.Load(xr + i); acc += v * v; }
            float sum = Vector256.Sum(acc);
            for (int i = hv; i < h; i++) sum += xr[i] * xr[i];
            float scale = 1f / MathF.Sqrt(sum / h + eps);
            var s = Vector256.Create(scale);
            for (int i = 0; i < hv; i += 8) Vector256.Store(Vector256.Load(xr + i) * s * Vector256.Load(pw + i), yr + i);
            for (int i = hv; i < h; i++) yr[i] = xr[i] * scale * pw[i];
        }
        return y;
    }

    /// <summary>gate_up [N, 2I] (gate, then up) → silu(gate) · up, [N, I]. With a team, rows go to its threads
    /// <see cref="SiluRowsPerChunk"/> at a time, so that both cores work here too, as in the projections around it: 64 rows
    /// of the 0.5B shape, 24 layers, took 9.8 ms on one thread and 5.6 ms on two (medians; about 1% of a 64-token
    /// prefill step). A row's result is the same on any thread.</summary>
    public static Tensor SiluMul(Tensor gateUp, GemmTeam? team = null)
    {
        int n = (int)gateUp.shape[0], inter = (int)gateUp.shape[1] / 2;
        using var gc = gateUp.contiguous();
        var y = empty(n, inter, ScalarType.Float32);
        nint pg = (nint)TensorData.Floats(gc), py = (nint)TensorData.Floats(y);
        int chunks = (n + SiluRowsPerChunk - 1) / SiluRowsPerChunk;
        void Chunk(int c)
        {
            for (int r = c * SiluRowsPerChunk; r < Math.Min(n, (c + 1) * SiluRowsPerChunk); r++)
                SiluMulRow((float*)pg + (long)r * 2 * inter, (float*)py + (long)r * inter, inter);
        }
        GemmTeam.Run(team, chunks, Chunk);
        return y;
    }

    /// <summary>Rows of SiLU·up a team thread takes at a time (a row of the 0.5B shape is ~6 µs).</summary>
    public const int SiluRowsPerChunk = 4;

    private static void SiluMulRow(float* g, float* yr, int inter)
    {
        float* u = g + inter;
        int iv = inter & ~7;
        for (int i = 0; i < iv; i += 8)
        {
            var gv = Vector256.Load(g + i);
            Vector256.Store(gv / (Vector256<float>.One + Vector256.Exp(-gv)) * Vector256.Load(u + i), yr + i);
        }
        for (int i = iv; i < inter; i++) yr[i] = g[i] / (1f + MathF.Exp(-g[i])) * u[i];
    }

    /// <summary>
    /// From the fused projection qkv [N, (heads + 2·kvHeads)·D]: rotates the queries and keys by their positions'
    /// cos/sin [N, D], writes each token's keys and values into its slot of the layer's pool ([slots, kvHeads, D]),
    /// and returns the rotated queries, [N, heads, D].
    /// </summary>
    public static Tensor RopeAndStore(Tensor qkv, Tensor cos, Tensor sin, Tensor poolKeys, Tensor poolValues, long[] slots,
                                      int heads, int kvHeads, int d)
    {
        int n = (int)qkv.shape[0], width = (heads + 2 * kvHeads) * d, half = d / 2;
        using var src = qkv.contiguous();
        var q = empty(n, heads, d, ScalarType.Float32);
        float* pqkv = TensorData.Floats(src), pc = TensorData.Floats(cos), ps = TensorData.Floats(sin);
        float* pq = TensorData.Floats(q), pk = TensorData.Floats(poolKeys), pv = TensorData.Floats(poolValues);
        for (int t = 0; t < n; t++)
        {
            float* row = pqkv + (long)t * width, c = pc + (long)t * d, s = ps + (long)t * d;
            for (int h = 0; h < heads; h++) Rotate(row + h * d, pq + ((long)t * heads + h) * d, c, s, half);
            float* keys = pk + slots[t] * kvHeads * d;
            for (int h = 0; h < kvHeads; h++) Rotate(row + (heads + h) * d, keys + h * d, c, s, half);
            new ReadOnlySpan<float>(row + (heads + kvHeads) * d, kvHeads * d).CopyTo(new Span<float>(pv + slots[t] * kvHeads * d, kvHeads * d));
        }
        return q;
    }

    /// <summary>x·cos + rotate_half(x)·sin, rotate_half(x) = (-x[half..], x[..half]).</summary>
    private static void Rotate(float* x, float* y, float* cos, float* sin, int half)
    {
        for (int i = 0; i < half; i++)
        {
            float a = x[i], b = x[i + half];
            y[i] = a * cos[i] - b * sin[i];
            y[i + half] = b * cos[i + half] + a * sin[i + half];
        }
    }
}
