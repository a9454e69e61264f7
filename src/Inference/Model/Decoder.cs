using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ActorQuery.Inference.Model;

/// <summary>One sequence's part of a batched forward pass: its new tokens and its cache.</summary>
/// <param name="Tokens">Tokens after the cache's current length (a decode token, or a prompt chunk).</param>
/// <param name="WantLogits">Whether the caller samples after this chunk (false for a non-final prefill chunk).</param>
public readonly record struct BatchItem(int[] Tokens, KvCache Cache, bool WantLogits);

/// <summary>
/// The forward pass of a Qwen2 / Llama decoder over many sequences at once. Their new tokens are packed into
/// one [N, hidden] matrix so every projection reads each weight once for the whole batch (the point of
/// batching on a memory-bound machine); attention runs per sequence against its own <see cref="KvCache"/>.
/// Stateless apart from the weights: callers own the caches and the dispose scope.
/// </summary>
public sealed class Decoder : IDisposable
{
    private readonly RotaryEmbedding _rope;
    private readonly int _heads, _kvHeads, _headDim, _groups;

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
    }

    /// <summary>
    /// Runs every item's tokens, appends their keys/values to the items' caches, and returns float32 logits of
    /// the last token of each item with <see cref="BatchItem.WantLogits"/>, in order: [items wanting logits, vocab].
    /// Call inside a dispose scope and no_grad.
    /// </summary>
    public Tensor? Forward(IReadOnlyList<BatchItem> items) => Run(items, allPositions: false);

    /// <summary>Logits of every position of one sequence's tokens: [T, vocab] (tests and scoring).</summary>
    public Tensor ForwardAllPositions(int[] tokens, KvCache cache) => Run([new BatchItem(tokens, cache, true)], allPositions: true)!;

    private Tensor? Run(IReadOnlyList<BatchItem> items, bool allPositions)
    {
        var w = Weights;
        int n = 0;
        foreach (var it in items)
        {
            if (it.Tokens.Length == 0) throw new ArgumentException("an item has no tokens to run", nameof(items));
            if (it.Cache.Length + it.Tokens.Length > it.Cache.Capacity)
                throw new InvalidOperationException($"KV cache holds {it.Cache.Capacity} tokens; {it.Cache.Length} used, {it.Tokens.Length} more asked");
            n += it.Tokens.Length;
        }
        var ids = new long[n];
        var positions = new int[n];
        var offsets = new int[items.Count];
        for (int i = 0, o = 0; i < items.Count; i++)
        {
            offsets[i] = o;
            var it = items[i];
            for (int t = 0; t < it.Tokens.Length; t++, o++) { ids[o] = it.Tokens[t]; positions[o] = it.Cache.Length + t; }
        }

        var x = w.embed_tokens.index_select(0, tensor(ids, ScalarType.Int64, w.Device));           // [N, hidden]
        var (cos, sin) = _rope.For(positions);                                                       // [N, D]
        cos = cos.unsqueeze(1); sin = sin.unsqueeze(1);                                              // [N, 1, D]
        var masks = items.Select(it => it.Tokens.Length > 1 ? CausalMask(it.Cache.Length, it.Tokens.Length) : null).ToArray();
        long qDim = (long)_heads * _headDim, kvDim = (long)_kvHeads * _headDim;

        for (int l = 0; l < w.layers.Count; l++)
        {
            var lw = w.layers[l];
            var h = RmsNorm(x, lw.input_layernorm);
            var qkv = F.linear(h, lw.qkv_proj, lw.qkv_proj_bias);                                   // [N, q+2kv]
            var q = RotaryEmbedding.Apply(qkv.narrow(1, 0, qDim).view(n, _heads, _headDim), cos, sin);          // [N, heads, D]
            var k = RotaryEmbedding.Apply(qkv.narrow(1, qDim, kvDim).view(n, _kvHeads, _headDim), cos, sin);    // [N, kv_heads, D]
            var v = qkv.narrow(1, qDim + kvDim, kvDim).view(n, _kvHeads, _headDim);                             // [N, kv_heads, D]

            var outs = new Tensor[items.Count];
            for (int i = 0; i < items.Count; i++)
            {
                var it = items[i];
                int T = it.Tokens.Length, start = it.Cache.Length;
                var layerK = it.Cache.Keys[l];                                                       // [kv_heads, cap, D]
                var layerV = it.Cache.Values[l];
                layerK.narrow(1, start, T).copy_(k.narrow(0, offsets[i], T).transpose(0, 1));
                layerV.narrow(1, start, T).copy_(v.narrow(0, offsets[i], T).transpose(0, 1));
                var keys = layerK.narrow(1, 0, start + T);                                          // [kv_heads, L, D]
                var values = layerV.narrow(1, 0, start + T);
                // Grouped-query attention without copying K/V: the query heads that share a KV head are
                // folded into the row dimension, [kv_heads, groups*T, D], so each KV head is read once.
                var qi = q.narrow(0, offsets[i], T).permute(1, 0, 2).reshape(_kvHeads, _groups * T, _headDim);
                var attn = F.scaled_dot_product_attention(qi, keys, values, masks[i]);              // [kv_heads, groups*T, D]
                outs[i] = attn.reshape(_heads, T, _headDim).transpose(0, 1).reshape(T, qDim);       // [T, heads*D]
            }
            var o = outs.Length == 1 ? outs[0] : cat(outs, 0);                                       // [N, heads*D]
            x = x.add(F.linear(o, lw.o_proj));

            h = RmsNorm(x, lw.post_attention_layernorm);
            var gu = F.linear(h, lw.gate_up_proj);                                                   // [N, 2*inter]
            var inter = gu.shape[1] / 2;
            var act = F.silu(gu.narrow(1, 0, inter)).mul_(gu.narrow(1, inter, inter));
            x = x.add_(F.linear(act, lw.down_proj));
        }
        foreach (var it in items) it.Cache.Length += it.Tokens.Length;

        Tensor last;
        if (allPositions) last = x;
        else
        {
            var rows = new List<long>();
            for (int i = 0; i < items.Count; i++)
                if (items[i].WantLogits) rows.Add(offsets[i] + items[i].Tokens.Length - 1);
            if (rows.Count == 0) return null;
            last = x.index_select(0, tensor(rows.ToArray(), ScalarType.Int64, w.Device));           // [B, hidden]
        }
        return F.linear(RmsNorm(last, w.norm), w.lm_head).to(ScalarType.Float32);                 // [B or T, vocab]
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
