using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>One sequence's part of a batched forward pass: its new tokens and its blocks in the KV pool.</summary>
/// <param name="Tokens">Tokens after the cache's current length (a decode token, or a prompt chunk).</param>
/// <param name="Cache">The sequence's block table; it must already hold room for the new tokens.</param>
/// <param name="WantLogits">Whether the caller samples after this chunk (false for a non-final prefill chunk).</param>
public readonly record struct BatchItem(int[] Tokens, KvBlockTable Cache, bool WantLogits);

/// <summary>
/// The forward pass of a Qwen2 / Llama decoder over many sequences at once. Their new tokens are packed into
/// one [N, hidden] matrix so every projection reads each weight once for the whole batch (the point of
/// batching on a memory-bound machine); each layer's new keys and values go into their slots of the shared
/// <see cref="KvBlockPool"/>. The per-layer operations are an <see cref="ILayerOps"/> backend chosen once at load
/// (libtorch, or the hand-written float32 CPU kernels). Stateless apart from the weights: callers own the pool,
/// the block tables and the dispose scope.
/// </summary>
public sealed class Decoder : IDisposable
{
    private readonly RotaryEmbedding _rope;
    private readonly ILayerOps _ops;

    public DecoderWeights Weights { get; }

    /// <summary>Whether the layers run on the hand-written CPU kernels (<see cref="CpuKernelLayerOps"/>).</summary>
    public bool UsesCpuKernel => _ops is CpuKernelLayerOps;

    /// <param name="kernelThreads">Threads of the hand-written CPU kernels for float32 CPU layers; 0: libtorch
    /// does every operation (also when a weight is not contiguous, which the kernels read as a plain array).</param>
    public Decoder(DecoderWeights weights, int kernelThreads = 0)
    {
        Weights = weights;
        _ops = LayerOps.For(weights, kernelThreads);
        _rope = new RotaryEmbedding(weights.Config, weights.Dtype, weights.Device);
    }

    /// <summary>
    /// Runs every item's tokens, stores their keys/values in the items' blocks of <paramref name="pool"/>
    /// (advancing each table's Length), and returns float32 logits of the last token of each item with
    /// <see cref="BatchItem.WantLogits"/>, in order: [items wanting logits, vocab]. Call inside a dispose scope and no_grad.
    /// </summary>
    public Tensor? Forward(KvBlockPool pool, IReadOnlyList<BatchItem> items) => Run(pool, items, allPositions: false);

    /// <summary>Logits of every position of one sequence's tokens: [T, vocab] (tests and scoring).</summary>
    public Tensor ForwardAllPositions(KvBlockPool pool, int[] tokens, KvBlockTable cache) =>
        Run(pool, [new BatchItem(tokens, cache, true)], allPositions: true)!;

    private Tensor? Run(KvBlockPool pool, IReadOnlyList<BatchItem> items, bool allPositions)
    {
        var w = Weights;
        if (items.Count == 0) throw new ArgumentException("no items to run", nameof(items));
        int n = 0;
        foreach (var it in items)
        {
            if (it.Tokens.Length == 0) throw new ArgumentException("an item has no tokens to run", nameof(items));
            if (it.Cache.Allocator != pool.Allocator) throw new ArgumentException("all items must share one KV pool", nameof(items));
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

        var x = Int8Matrix.Is(w.embed_tokens)
            ? Int8Matrix.Rows(w.embed_tokens, w.Config.HiddenSize, ids)                               // int8 rows, widened
            : w.embed_tokens.index_select(0, tensor(ids, ScalarType.Int64, w.Device));              // [N, hidden]
        if (x.dtype != w.Dtype) x = x.to(w.Dtype);                                                   // bf16 rows, float32 arithmetic
        var (cos, sin) = _rope.For(positions);                                                       // [N, D]
        var step = _ops.BeginStep(new StepBatch(items, offsets, writeSlots, cos, sin, pool.BlockSize));

        for (int l = 0; l < w.layers.Count; l++)
        {
            // Each layer's intermediates are freed when the layer ends, not when the step does: the step's peak is
            // then one layer's activations, not every layer's (24 layers of a 64-token step held 175 MiB on the
            // 0.5B shape). Only the residual stream leaves the layer; the previous one is freed once it is used.
            var input = x;
            using (var layer = NewDisposeScope())
            {
                var lw = w.layers[l];
                var poolK = pool.Keys[l];                                                            // [slots, kv_heads, D]
                var poolV = pool.Values[l];
                var h = _ops.RmsNorm(x, lw.input_layernorm);
                var qkv = _ops.Linear(h, lw.qkv_proj, lw.qkv_proj_bias);                           // [N, q+2kv]
                var q = step.RopeAndStore(qkv, poolK, poolV);                                        // [N, heads, D]
                var o = step.Attention(q, poolK, poolV);                                             // [N, heads*D]
                x = x.add(_ops.Linear(o, lw.o_proj));

                h = _ops.RmsNorm(x, lw.post_attention_layernorm);
                var gu = _ops.Linear(h, lw.gate_up_proj);                                          // [N, 2*inter]
                x = x.add_(_ops.Linear(_ops.SiluMul(gu), lw.down_proj)).MoveToOuterDisposeScope();  // [N, hidden]
            }
            if (l > 0) input.Dispose();
        }
        Tensor? logits = null;
        if (allPositions) logits = Project(x);
        else
        {
            var rows = new List<long>();
            for (int i = 0; i < items.Count; i++)
                if (items[i].WantLogits) rows.Add(offsets[i] + items[i].Tokens.Length - 1);
            if (rows.Count > 0)
                logits = Project(rows.Count == n ? x : x.index_select(0, tensor(rows.ToArray(), ScalarType.Int64, w.Device))); // [B, hidden]
        }
        // Only a step that ran to its end advances the caches: one that fails anywhere, the final projection included (an
        // out-of-memory there is as likely as in a layer), leaves them as they were, so that running it again is exact.
        foreach (var it in items) it.Cache.Length += it.Tokens.Length;
        return logits;
    }

    /// <summary>Test hook: runs before the final projection (a fault injected where its out-of-memory would occur).</summary>
    internal Action? BeforeProjection { get; set; }

    private Tensor Project(Tensor last)
    {
        BeforeProjection?.Invoke();
        return Linear(_ops.RmsNorm(last, Weights.norm), Weights.lm_head).to(ScalarType.Float32);           // [B or T, vocab]
    }

    /// <summary>x·Wᵀ (+ bias) for x [M, in] and a checkpoint weight W [out, in], as this decoder's projections compute it.</summary>
    internal Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null) => _ops.Linear(x, weight, bias);

    public void Dispose()
    {
        _ops.Dispose();
        Weights.Dispose();
    }
}
