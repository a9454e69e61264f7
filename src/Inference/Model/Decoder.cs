using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ActorQuery.Inference.Model;

/// <summary>
/// The forward pass of a Qwen2 / Llama decoder over one sequence's new tokens, reading and extending its
/// <see cref="KvCache"/>. Stateless apart from the weights: callers own the caches and the dispose scope.
/// </summary>
public sealed class Decoder : IDisposable
{
    private readonly RotaryEmbedding _rope;
    private readonly int _heads, _kvHeads, _headDim, _groups;
    private readonly double _scale;

    public DecoderWeights Weights { get; }

    public Decoder(DecoderWeights weights)
    {
        Weights = weights;
        var c = weights.Config;
        _rope = new RotaryEmbedding(c, weights.Dtype, weights.Device);
        _heads = c.NumAttentionHeads;
        _kvHeads = c.NumKeyValueHeads;
        _headDim = c.HeadDim;
        _groups = _heads / _kvHeads;
        _scale = 1.0 / Math.Sqrt(_headDim);
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> (the sequence's tokens after the cache's current length) through the
    /// model, appends their keys/values to <paramref name="cache"/>, and returns float32 logits:
    /// [T, vocab] when <paramref name="allPositions"/>, else [vocab] for the last token only.
    /// Call inside a dispose scope and no_grad.
    /// </summary>
    public Tensor Forward(ReadOnlySpan<int> tokens, KvCache cache, bool allPositions = false)
    {
        int T = tokens.Length, start = cache.Length;
        if (T == 0) throw new ArgumentException("no tokens to run", nameof(tokens));
        if (start + T > cache.Capacity)
            throw new InvalidOperationException($"KV cache holds {cache.Capacity} tokens; {start} used, {T} more asked");
        var w = Weights;
        var ids = tensor(tokens.ToArray().Select(i => (long)i).ToArray(), new long[] { T }, ScalarType.Int64, w.Device);
        var x = w.embed_tokens.index_select(0, ids);                                 // [T, hidden]
        var (cos, sin) = _rope.For(start, T);                                       // [T, head_dim] each
        Tensor? mask = T > 1 ? CausalMask(start, T) : null;                          // [groups*T, start+T]
        long qDim = (long)_heads * _headDim, kvDim = (long)_kvHeads * _headDim;

        for (int l = 0; l < w.layers.Count; l++)
        {
            var lw = w.layers[l];
            var h = RmsNorm(x, lw.input_layernorm);
            var qkv = F.linear(h, lw.qkv_proj, lw.qkv_proj_bias);                   // [T, q+2kv]
            var q = qkv.narrow(1, 0, qDim).view(T, _heads, _headDim).transpose(0, 1);            // [heads, T, D]
            var k = qkv.narrow(1, qDim, kvDim).view(T, _kvHeads, _headDim).transpose(0, 1);      // [kv_heads, T, D]
            var v = qkv.narrow(1, qDim + kvDim, kvDim).view(T, _kvHeads, _headDim).transpose(0, 1);
            q = RotaryEmbedding.Apply(q, cos, sin);
            k = RotaryEmbedding.Apply(k, cos, sin);

            var layerK = cache.Keys[l];                                             // [kv_heads, cap, D]
            var layerV = cache.Values[l];
            layerK.narrow(1, start, T).copy_(k);
            layerV.narrow(1, start, T).copy_(v);
            var keys = layerK.narrow(1, 0, start + T);                              // [kv_heads, L, D]
            var values = layerV.narrow(1, 0, start + T);

            // Grouped-query attention without copying K/V: the query heads that share a KV head are folded
            // into the row dimension, [kv_heads, groups*T, D], so each KV head is read once.
            var qg = q.reshape(_kvHeads, _groups * T, _headDim);
            var attn = F.scaled_dot_product_attention(qg, keys, values, mask);    // [kv_heads, groups*T, D]
            var o = attn.reshape(_heads, T, _headDim).transpose(0, 1).reshape(T, qDim);          // [T, heads*D]
            x = x.add(F.linear(o, lw.o_proj));

            h = RmsNorm(x, lw.post_attention_layernorm);
            var gu = F.linear(h, lw.gate_up_proj);                                  // [T, 2*inter]
            var inter = gu.shape[1] / 2;
            var act = F.silu(gu.narrow(1, 0, inter)).mul_(gu.narrow(1, inter, inter));
            x = x.add_(F.linear(act, lw.down_proj));
        }
        cache.Length = start + T;

        var last = allPositions ? x : x.narrow(0, T - 1, 1);
        var logits = F.linear(RmsNorm(last, w.norm), w.lm_head).to(ScalarType.Float32);   // [T or 1, vocab]
        return allPositions ? logits : logits.squeeze(0);
    }

    /// <summary>Row g*T+t may attend to cached positions 0..start+t (the query heads of a group share the mask).</summary>
    private Tensor CausalMask(int start, int T)
    {
        var rows = arange(start, start + T, ScalarType.Int64, Weights.Device).unsqueeze(1);         // [T, 1]
        var cols = arange(0, start + T, ScalarType.Int64, Weights.Device).unsqueeze(0);             // [1, L]
        return cols.le(rows).repeat(_groups, 1);                                                     // [groups*T, L]
    }

    /// <summary>RMSNorm computed in float32 (as Hugging Face does), cast back to the compute dtype.</summary>
    private Tensor RmsNorm(Tensor x, Tensor weight)
    {
        var eps = Weights.Config.RmsNormEps;
        if (x.dtype == ScalarType.Float32)
            return x.mul(x.pow(2).mean(new long[] { -1 }, keepdim: true).add_(eps).rsqrt_()).mul_(weight);
        var xf = x.to(ScalarType.Float32);
        var normed = xf.mul_(xf.pow(2).mean(new long[] { -1 }, keepdim: true).add_(eps).rsqrt_());
        return normed.to(x.dtype).mul_(weight);
    }

    public void Dispose() => Weights.Dispose();
}
