using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ActorQuery.Inference.Model;

/// <summary>One sequence's part of a batched forward pass: its new tokens and its blocks in the KV pool.</summary>
/// <param name="Tokens">Tokens after the cache's current length (a decode token, or a prompt chunk).</param>
/// <param name="Cache">The sequence's block table; it must already hold room for the new tokens.</param>
/// <param name="WantLogits">Whether the caller samples after this chunk (false for a non-final prefill chunk).</param>
public readonly record struct BatchItem(int[] Tokens, KvBlockTable Cache, bool WantLogits);

/// <summary>
/// The forward pass of a Qwen2 / Llama decoder over many sequences at once. Their new tokens are packed into
/// one [N, hidden] matrix so every projection reads each weight once for the whole batch (the point of
/// batching on a memory-bound machine). New keys and values are scattered into their slots of the shared
/// <see cref="KvBlockPool"/> with one index_copy_ per layer. Attention: the single-token (decode) items at the
/// head of the batch run as one padded, masked SDPA call, and prefill chunks one SDPA call each with a causal mask.
/// float32 on an AVX2 CPU instead runs the projections in <see cref="SmallBatchGemm"/>, the per-token ops (and the
/// KV write) in <see cref="CpuLayerOps"/>, and every token's attention in <see cref="PagedAttention"/>, which reads
/// the pool in place. Stateless apart from the weights: callers own the pool, the block tables and the dispose scope.
/// </summary>
public sealed class Decoder : IDisposable
{
    private readonly RotaryEmbedding _rope;
    private readonly int _heads, _kvHeads, _headDim, _groups;
    private readonly GemmTeam? _team;     // set when projections go through SmallBatchGemm
    private readonly bool _cpuOps;        // ... and then the per-token ops go through CpuLayerOps
    private readonly bool _paged;         // ... and attention through PagedAttention

    public DecoderWeights Weights { get; }

    /// <param name="kernelThreads">Threads of <see cref="SmallBatchGemm"/> for float32 CPU projections; 0: libtorch
    /// does every projection (also when a weight is not contiguous, which the kernel reads as a plain array).</param>
    public Decoder(DecoderWeights weights, int kernelThreads = 0)
    {
        Weights = weights;
        bool contiguous = weights.lm_head.is_contiguous() && weights.layers.All(l => l.All().All(t => t.is_contiguous()));
        _team = contiguous && kernelThreads > 0 ? new GemmTeam(kernelThreads) : null;
        if (weights.MatrixDtype != weights.Dtype && _team is null)
            throw new NotSupportedException($"{DeviceAndDtype.Name(weights.MatrixDtype)} weights under {DeviceAndDtype.Name(weights.Dtype)} " +
                                            "arithmetic need the hand-written CPU kernel (an AVX2/FMA CPU, kernel threads > 0, contiguous weights)");
        _cpuOps = _team is not null && weights.norm.is_contiguous();
        var c = weights.Config;
        _paged = _cpuOps && PagedAttention.Supports(c.HeadDim);
        _rope = new RotaryEmbedding(c, weights.Dtype, weights.Device);
        _heads = c.NumAttentionHeads;
        _kvHeads = c.NumKeyValueHeads;
        _headDim = c.HeadDim;
        _groups = _heads / _kvHeads;
    }

    /// <summary>
    /// Runs every item's tokens, stores their keys/values in the items' blocks (advancing each table's Length),
    /// and returns float32 logits of the last token of each item with <see cref="BatchItem.WantLogits"/>, in
    /// order: [items wanting logits, vocab]. Call inside a dispose scope and no_grad.
    /// </summary>
    public Tensor? Forward(IReadOnlyList<BatchItem> items) => Run(items, allPositions: false);

    /// <summary>Logits of every position of one sequence's tokens: [T, vocab] (tests and scoring).</summary>
    public Tensor ForwardAllPositions(int[] tokens, KvBlockTable cache) => Run([new BatchItem(tokens, cache, true)], allPositions: true)!;

    private Tensor? Run(IReadOnlyList<BatchItem> items, bool allPositions)
    {
        var w = Weights;
        if (items.Count == 0) throw new ArgumentException("no items to run", nameof(items));
        var pool = items[0].Cache.Pool;
        int n = 0;
        foreach (var it in items)
        {
            if (it.Tokens.Length == 0) throw new ArgumentException("an item has no tokens to run", nameof(items));
            if (it.Cache.Pool != pool) throw new ArgumentException("all items must share one KV pool", nameof(items));
            if (it.Cache.Length + it.Tokens.Length > it.Cache.Capacity)
                throw new InvalidOperationException($"KV blocks hold {it.Cache.Capacity} tokens; {it.Cache.Length} used, {it.Tokens.Length} more asked");
            n += it.Tokens.Length;
        }
        var ids = new long[n];
        var positions = new int[n];
        var writeSlots = new long[n];
        var offsets = new int[items.Count];
        for (int i = 0, o = 0; i < items.Count; i++)
        {
            offsets[i] = o;
            var it = items[i];
            for (int t = 0; t < it.Tokens.Length; t++, o++)
            {
                ids[o] = it.Tokens[t];
                positions[o] = it.Cache.Length + t;
                writeSlots[o] = it.Cache.Slot(it.Cache.Length + t);
            }
        }
        var plan = AttentionPlan.Create(items, w.Device, this, paged: _paged);

        var x = w.embed_tokens.index_select(0, tensor(ids, ScalarType.Int64, w.Device));           // [N, hidden]
        if (x.dtype != w.Dtype) x = x.to(w.Dtype);                                                   // bf16 rows, float32 arithmetic
        var (cos2d, sin2d) = _rope.For(positions);                                                   // [N, D]
        // The libtorch path's forms of the same: broadcastable cos/sin and the write slots as a tensor.
        var cos = _cpuOps ? null : cos2d.unsqueeze(1);                                               // [N, 1, D]
        var sin = _cpuOps ? null : sin2d.unsqueeze(1);
        var slots = _cpuOps ? null : tensor(writeSlots, ScalarType.Int64, w.Device);                 // [N]
        long qDim = (long)_heads * _headDim, kvDim = (long)_kvHeads * _headDim;

        for (int l = 0; l < w.layers.Count; l++)
        {
            var lw = w.layers[l];
            var h = RmsNorm(x, lw.input_layernorm);
            var qkv = Linear(h, lw.qkv_proj, lw.qkv_proj_bias);                                   // [N, q+2kv]
            var poolK = pool.Keys[l];                                                                // [slots, kv_heads, D]
            var poolV = pool.Values[l];
            Tensor q;                                                                                // [N, heads, D]
            if (_cpuOps) q = CpuLayerOps.RopeAndStore(qkv, cos2d, sin2d, poolK, poolV, writeSlots, _heads, _kvHeads, _headDim);
            else
            {
                q = RotaryEmbedding.Apply(qkv.narrow(1, 0, qDim).view(n, _heads, _headDim), cos!, sin!);
                var k = RotaryEmbedding.Apply(qkv.narrow(1, qDim, kvDim).view(n, _kvHeads, _headDim), cos!, sin!);  // [N, kv_heads, D]
                var v = qkv.narrow(1, qDim + kvDim, kvDim).view(n, _kvHeads, _headDim);                             // [N, kv_heads, D]
                poolK.index_copy_(0, slots!, k);
                poolV.index_copy_(0, slots!, v);
            }

            Tensor o;                                                                                // [N, heads*D]
            if (plan.TokenTables is not null)
                o = PagedAttention.Run(q, poolK, poolV, plan.TokenTables, plan.TokenLengths!, pool.BlockSize, _heads, _kvHeads, _headDim, _team);
            else o = LibtorchAttention(q, poolK, poolV, plan, items, offsets);
            x = x.add(Linear(o, lw.o_proj));

            h = RmsNorm(x, lw.post_attention_layernorm);
            var gu = Linear(h, lw.gate_up_proj);                                                   // [N, 2*inter]
            var inter = gu.shape[1] / 2;
            var act = _cpuOps ? CpuLayerOps.SiluMul(gu, _team) : F.silu(gu.narrow(1, 0, inter)).mul_(gu.narrow(1, inter, inter));
            x = x.add_(Linear(act, lw.down_proj));
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
            last = rows.Count == n ? x : x.index_select(0, tensor(rows.ToArray(), ScalarType.Int64, w.Device)); // [B, hidden]
        }
        return Linear(RmsNorm(last, w.norm), w.lm_head).to(ScalarType.Float32);                 // [B or T, vocab]
    }

    /// <summary>Attention through libtorch (other devices and dtypes): the decode tokens in one padded, masked SDPA
    /// call, each prefill chunk in its own with a causal mask.</summary>
    private Tensor LibtorchAttention(Tensor q, Tensor poolK, Tensor poolV, AttentionPlan plan, IReadOnlyList<BatchItem> items, int[] offsets)
    {
        long qDim = (long)_heads * _headDim;
        var outs = new List<Tensor>(items.Count);
        if (plan.DecodeCount > 0)
        {
            // Gathering a sequence's slots copies its keys/values into a temporary ([B, L, kv_heads, D]
            // per layer): on the CPU that copy is small next to the weight reads, and it is what lets
            // one SDPA call serve every decode token of the step.
            int b = plan.DecodeCount, L = plan.DecodeKeyLength;
            var keys = poolK.index_select(0, plan.DecodeGather!).view(b, L, _kvHeads, _headDim).transpose(1, 2);   // [B, kv_heads, L, D]
            var values = poolV.index_select(0, plan.DecodeGather!).view(b, L, _kvHeads, _headDim).transpose(1, 2);
            // The query heads that share a KV head form that head's rows: [B, kv_heads, groups, D].
            var qd = q.narrow(0, 0, b).view(b, _kvHeads, _groups, _headDim);
            var attn = F.scaled_dot_product_attention(qd, keys, values, plan.DecodeMask);      // [B, kv_heads, groups, D]
            outs.Add(attn.reshape(b, qDim));                                                     // [B, heads*D]
        }
        for (int i = plan.DecodeCount; i < items.Count; i++)
        {
            int T = items[i].Tokens.Length;
            var keys = poolK.index_select(0, plan.Gather[i]!).transpose(0, 1);                  // [kv_heads, L, D]
            var values = poolV.index_select(0, plan.Gather[i]!).transpose(0, 1);
            // Grouped-query attention without repeating K/V: the query heads that share a KV head are
            // folded into the row dimension, [kv_heads, groups*T, D], so each KV head is read once.
            var qi = q.narrow(0, offsets[i], T).permute(1, 0, 2).reshape(_kvHeads, _groups * T, _headDim);
            var attn = F.scaled_dot_product_attention(qi, keys, values, plan.Masks[i]);         // [kv_heads, groups*T, D]
            outs.Add(attn.reshape(_heads, T, _headDim).transpose(0, 1).reshape(T, qDim));       // [T, heads*D]
        }
        return outs.Count == 1 ? outs[0] : cat(outs, 0);                                      // [N, heads*D]
    }

    /// <summary>
    /// Which pool slots each item's attention reads, computed once per step and shared by every layer. The
    /// leading run of single-token items is padded to its longest key length and masked; the rest (prefill
    /// chunks) get their own slot list and causal mask.
    /// </summary>
    private sealed class AttentionPlan
    {
        public int DecodeCount;
        public int DecodeKeyLength;
        public Tensor? DecodeGather;                   // [B * L] slots, row-major by item
        public Tensor? DecodeMask;                     // [B, 1, 1, L] true where a key is the item's; null if none padded
        public Tensor?[] Gather = [];                  // per prefill item: [L] slots
        public Tensor?[] Masks = [];                   // per prefill item: [groups*T, L] or null for one token
        public int[][]? TokenTables;                   // with PagedAttention instead: per token, its sequence's block table
        public int[]? TokenLengths;                    // ... and how many positions it attends to

        public static AttentionPlan Create(IReadOnlyList<BatchItem> items, Device device, Decoder d, bool paged)
        {
            var p = new AttentionPlan { Gather = new Tensor?[items.Count], Masks = new Tensor?[items.Count] };
            if (paged)
            {
                int n = items.Sum(i => i.Tokens.Length), o = 0;
                p.TokenTables = new int[n][];
                p.TokenLengths = new int[n];
                foreach (var it in items)
                {
                    var table = it.Cache.Blocks.ToArray();
                    for (int t = 0; t < it.Tokens.Length; t++, o++)
                    {
                        p.TokenTables[o] = table;
                        p.TokenLengths[o] = it.Cache.Length + t + 1;
                    }
                }
                return p;
            }
            while (p.DecodeCount < items.Count && items[p.DecodeCount].Tokens.Length == 1) p.DecodeCount++;
            if (p.DecodeCount > 0)
            {
                int b = p.DecodeCount, L = 0;
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
                p.DecodeKeyLength = L;
                p.DecodeGather = tensor(gather, ScalarType.Int64, device);
                if (padded) p.DecodeMask = tensor(mask, new long[] { b, 1, 1, L }, device: device);
            }
            for (int i = p.DecodeCount; i < items.Count; i++)
            {
                var c = items[i].Cache;
                int T = items[i].Tokens.Length, L = c.Length + T;
                var gather = new long[L];
                for (int t = 0; t < L; t++) gather[t] = c.Slot(t);
                p.Gather[i] = tensor(gather, ScalarType.Int64, device);
                p.Masks[i] = T > 1 ? d.CausalMask(c.Length, T) : null;
            }
            return p;
        }
    }

    /// <summary>Row g*T+t may attend to cached positions 0..start+t (the query heads of a group share the mask).</summary>
    private Tensor CausalMask(int start, int T)
    {
        var rows = arange(start, start + T, ScalarType.Int64, Weights.Device).unsqueeze(1);         // [T, 1]
        var cols = arange(0, start + T, ScalarType.Int64, Weights.Device).unsqueeze(0);             // [1, L]
        return cols.le(rows).repeat(_groups, 1);                                                     // [groups*T, L]
    }

    /// <summary>Rows up to which <see cref="Linear"/> multiplies as W·xᵀ (where the kernel is not used).</summary>
    internal const int SmallBatchRows = 64;

    /// <summary>Whether float32 CPU projections can go through <see cref="SmallBatchGemm"/>: an AVX2/FMA CPU, and
    /// the environment variable ACTORQUERY_GEMM is not "torch" (which keeps libtorch's, for comparisons).</summary>
    public static bool SmallBatchGemmAvailable(ScalarType dtype, Device device) =>
        SmallBatchGemm.Supported && dtype == ScalarType.Float32 && device.type == DeviceType.CPU
        && Environment.GetEnvironmentVariable("ACTORQUERY_GEMM") != "torch";

    /// <summary>
    /// x·Wᵀ (+ bias) for x [M, in] and a checkpoint weight W [out, in]. float32 on an AVX2 CPU goes through
    /// <see cref="SmallBatchGemm"/> (libtorch has one thread there, so its GEMM would use one core).
    /// Otherwise, for 2..<see cref="SmallBatchRows"/> rows
    /// (a batch of decode tokens) it is computed as (W·xᵀ)ᵀ: libtorch's CPU GEMM handles a wide left operand with
    /// few columns far better than a few-row one against a transposed weight (measured on the 0.5B shape, one
    /// AVX2 thread: 3.3× less CPU at 4 rows, 1.4× at 16; the same at 1 row, where both are a GEMV). The
    /// transposed result is copied contiguous (M × out floats, small next to the weight read).
    /// </summary>
    internal Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        long rows = x.shape[0];
        if (_team is not null) return SmallBatchGemm.Linear(x, weight, bias, _team);
        if (rows < 2 || rows > SmallBatchRows) return F.linear(x, weight, bias);
        var y = bias is null ? mm(weight, x.t()) : addmm(bias.unsqueeze(1), weight, x.t(), 1, 1);     // [out, M]
        return y.t().contiguous();                                                              // [M, out]
    }

    /// <summary>RMSNorm computed in float32 (as Hugging Face does), cast back to the compute dtype.</summary>
    private Tensor RmsNorm(Tensor x, Tensor weight)
    {
        var eps = Weights.Config.RmsNormEps;
        if (_cpuOps) return CpuLayerOps.RmsNorm(x, weight, (float)eps);
        if (x.dtype == ScalarType.Float32)
            return x.mul(x.pow(2).mean(new long[] { -1 }, keepdim: true).add_(eps).rsqrt_()).mul_(weight);
        var xf = x.to(ScalarType.Float32);
        var normed = xf.mul_(xf.pow(2).mean(new long[] { -1 }, keepdim: true).add_(eps).rsqrt_());
        return normed.to(x.dtype).mul_(weight);
    }

    public void Dispose()
    {
        _team?.Dispose();
        Weights.Dispose();
    }
}
