using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ActorQuery.Inference.Model;

/// <summary>
/// A decoder layer's operations through libtorch, for every device and dtype: projections as GEMMs, new keys and
/// values scattered into their pool slots with one index_copy_ per layer, and attention as SDPA calls
/// (<see cref="SdpaAttention"/>).
/// </summary>
internal sealed class TorchLayerOps(DecoderWeights weights) : ILayerOps
{
    private readonly int _heads = weights.Config.NumAttentionHeads, _kvHeads = weights.Config.NumKeyValueHeads, _headDim = weights.Config.HeadDim;
    private readonly double _eps = weights.Config.RmsNormEps;

    /// <summary>Rows up to which <see cref="Linear"/> multiplies as W·xᵀ.</summary>
    internal const int SmallBatchRows = 64;

    /// <summary>
    /// x·Wᵀ (+ bias). For 2..<see cref="SmallBatchRows"/> rows (a batch of decode tokens) it is computed as (W·xᵀ)ᵀ:
    /// libtorch's CPU GEMM handles a wide left operand with few columns far better than a few-row one against a
    /// transposed weight (measured on the 0.5B shape, one AVX2 thread: 3.3× less CPU at 4 rows, 1.4× at 16; the same
    /// at 1 row, where both are a GEMV). The transposed result is copied contiguous (M × out floats, small next to
    /// the weight read).
    /// </summary>
    public Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        long rows = x.shape[0];
        if (rows < 2 || rows > SmallBatchRows) return F.linear(x, weight, bias);
        var y = bias is null ? mm(weight, x.t()) : addmm(bias.unsqueeze(1), weight, x.t(), 1, 1);     // [out, M]
        return y.t().contiguous();                                                              // [M, out]
    }

    public Tensor RmsNorm(Tensor x, Tensor weight)
    {
        if (x.dtype == ScalarType.Float32)
            return x.mul(x.pow(2).mean(new long[] { -1 }, keepdim: true).add_(_eps).rsqrt_()).mul_(weight);
        var xf = x.to(ScalarType.Float32);
        var normed = xf.mul_(xf.pow(2).mean(new long[] { -1 }, keepdim: true).add_(_eps).rsqrt_());
        return normed.to(x.dtype).mul_(weight);
    }

    public Tensor SiluMul(Tensor gateUp)
    {
        var inter = gateUp.shape[1] / 2;
        return F.silu(gateUp.narrow(1, 0, inter)).mul_(gateUp.narrow(1, inter, inter));
    }

    public ILayerStep BeginStep(StepBatch batch) => new Step(this, batch, weights.Device);

    public void Dispose() { }

    private sealed class Step(TorchLayerOps ops, StepBatch batch, Device device) : ILayerStep
    {
        private readonly Tensor _cos = batch.Cos.unsqueeze(1);                                         // [N, 1, D]
        private readonly Tensor _sin = batch.Sin.unsqueeze(1);
        private readonly Tensor _slots = tensor(batch.WriteSlots, ScalarType.Int64, device);            // [N]
        private readonly SdpaAttention _attention = SdpaAttention.Create(batch, device, ops._heads, ops._kvHeads, ops._headDim);

        public Tensor RopeAndStore(Tensor qkv, Tensor poolKeys, Tensor poolValues)
        {
            long n = qkv.shape[0], qDim = (long)ops._heads * ops._headDim, kvDim = (long)ops._kvHeads * ops._headDim;
            var q = RotaryEmbedding.Apply(qkv.narrow(1, 0, qDim).view(n, ops._heads, ops._headDim), _cos, _sin);         // [N, heads, D]
            var k = RotaryEmbedding.Apply(qkv.narrow(1, qDim, kvDim).view(n, ops._kvHeads, ops._headDim), _cos, _sin);   // [N, kv_heads, D]
            var v = qkv.narrow(1, qDim + kvDim, kvDim).view(n, ops._kvHeads, ops._headDim);                             // [N, kv_heads, D]
            poolKeys.index_copy_(0, _slots, k);
            poolValues.index_copy_(0, _slots, v);
            return q;
        }

        public Tensor Attention(Tensor q, Tensor poolKeys, Tensor poolValues) => _attention.Run(q, poolKeys, poolValues);
    }
}

/// <summary>
/// Attention through libtorch's SDPA: the leading run of single-token (decode) items in one padded, masked call,
/// each prefill chunk in its own with a causal mask. Which pool slots each item reads is computed once per step
/// and shared by every layer.
/// </summary>
internal sealed class SdpaAttention
{
    private readonly IReadOnlyList<BatchItem> _items;
    private readonly int[] _offsets;
    private readonly int _heads, _kvHeads, _headDim, _groups;
    private int _decodeCount;
    private int _decodeKeyLength;
    private Tensor? _decodeGather;                   // [B * L] slots, row-major by item
    private Tensor? _decodeMask;                     // [B, 1, 1, L] true where a key is the item's; null if none padded
    private readonly Tensor?[] _gather;              // per prefill item: [L] slots
    private readonly Tensor?[] _masks;               // per prefill item: [groups*T, L] or null for one token

    private SdpaAttention(StepBatch batch, int heads, int kvHeads, int headDim)
    {
        _items = batch.Items;
        _offsets = batch.Offsets;
        _heads = heads;
        _kvHeads = kvHeads;
        _headDim = headDim;
        _groups = heads / kvHeads;
        _gather = new Tensor?[_items.Count];
        _masks = new Tensor?[_items.Count];
    }

    public static SdpaAttention Create(StepBatch batch, Device device, int heads, int kvHeads, int headDim)
    {
        var p = new SdpaAttention(batch, heads, kvHeads, headDim);
        var items = batch.Items;
        while (p._decodeCount < items.Count && items[p._decodeCount].Tokens.Length == 1) p._decodeCount++;
        if (p._decodeCount > 0)
        {
            int b = p._decodeCount, L = 0;
            for (int i = 0; i < b; i++) L = Math.Max(L, items[i].Cache.Length + 1);
            var gather = new long[b * L];
            var mask = new bool[b * L];
            bool padded = false;
            for (int i = 0; i < b; i++)
            {
                var c = items[i].Cache;
                int len = c.Length + 1;
                for (int t = 0; t < L; t++)
                {
                    // Padding reads the item's own first slot (any valid slot will do: it is masked out).
                    gather[i * L + t] = c.Slot(t < len ? t : 0);
                    mask[i * L + t] = t < len;
                }
                padded |= len < L;
            }
            p._decodeKeyLength = L;
            p._decodeGather = tensor(gather, ScalarType.Int64, device);
            if (padded) p._decodeMask = tensor(mask, new long[] { b, 1, 1, L }, device: device);
        }
        for (int i = p._decodeCount; i < items.Count; i++)
        {
            var c = items[i].Cache;
            int T = items[i].Tokens.Length, L = c.Length + T;
            var gather = new long[L];
            for (int t = 0; t < L; t++) gather[t] = c.Slot(t);
            p._gather[i] = tensor(gather, ScalarType.Int64, device);
            p._masks[i] = T > 1 ? p.CausalMask(c.Length, T, device) : null;
        }
        return p;
    }

    /// <summary>Row g*T+t may attend to cached positions 0..start+t (the query heads of a group share the mask).</summary>
    private Tensor CausalMask(int start, int T, Device device)
    {
        var rows = arange(start, start + T, ScalarType.Int64, device).unsqueeze(1);         // [T, 1]
        var cols = arange(0, start + T, ScalarType.Int64, device).unsqueeze(0);             // [1, L]
        return cols.le(rows).repeat(_groups, 1);                                             // [groups*T, L]
    }

    /// <param name="q">[N, heads, D]: the step's rotated queries.</param>
    /// <returns>[N, heads*D].</returns>
    public Tensor Run(Tensor q, Tensor poolK, Tensor poolV)
    {
        long qDim = (long)_heads * _headDim;
        var outs = new List<Tensor>(_items.Count);
        if (_decodeCount > 0)
        {
            // Gathering a sequence's slots copies its keys/values into a temporary ([B, L, kv_heads, D]
            // per layer): on the CPU that copy is small next to the weight reads, and it is what lets
            // one SDPA call serve every decode token of the step.
            int b = _decodeCount, L = _decodeKeyLength;
            var keys = poolK.index_select(0, _decodeGather!).view(b, L, _kvHeads, _headDim).transpose(1, 2);   // [B, kv_heads, L, D]
            var values = poolV.index_select(0, _decodeGather!).view(b, L, _kvHeads, _headDim).transpose(1, 2);
            // The query heads that share a KV head form that head's rows: [B, kv_heads, groups, D].
            var qd = q.narrow(0, 0, b).view(b, _kvHeads, _groups, _headDim);
            var attn = F.scaled_dot_product_attention(qd, keys, values, _decodeMask);      // [B, kv_heads, groups, D]
            outs.Add(attn.reshape(b, qDim));                                                 // [B, heads*D]
        }
        for (int i = _decodeCount; i < _items.Count; i++)
        {
            int T = _items[i].Tokens.Length;
            var keys = poolK.index_select(0, _gather[i]!).transpose(0, 1);                  // [kv_heads, L, D]
            var values = poolV.index_select(0, _gather[i]!).transpose(0, 1);
            // Grouped-query attention without repeating K/V: the query heads that share a KV head are
            // folded into the row dimension, [kv_heads, groups*T, D], so each KV head is read once.
            var qi = q.narrow(0, _offsets[i], T).permute(1, 0, 2).reshape(_kvHeads, _groups * T, _headDim);
            var attn = F.scaled_dot_product_attention(qi, keys, values, _masks[i]);         // [kv_heads, groups*T, D]
            outs.Add(attn.reshape(_heads, T, _headDim).transpose(0, 1).reshape(T, qDim));   // [T, heads*D]
        }
        return outs.Count == 1 ? outs[0] : cat(outs, 0);                                  // [N, heads*D]
    }
}
