using ActorQuery.Inference.Checkpoint;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

#pragma warning disable IDE1006 // Hugging Face checkpoint names (q_proj, input_layernorm) on purpose.
/// <summary>
/// One decoder layer's weights, in the compute dtype on the compute device. q/k/v and gate/up are stored
/// fused (concatenated along the output dimension) so that a step runs one matmul instead of three / two;
/// the checkpoint names they come from are listed in <see cref="DecoderWeights.Load"/>.
/// </summary>
public sealed class LayerWeights : IDisposable
{
    public required Tensor input_layernorm { get; init; }
    /// <summary>[q_heads*D + 2*kv_heads*D, hidden]: q_proj, k_proj, v_proj stacked.</summary>
    public required Tensor qkv_proj { get; init; }
    public Tensor? qkv_proj_bias { get; init; }
    public required Tensor o_proj { get; init; }
    public required Tensor post_attention_layernorm { get; init; }
    /// <summary>[2*intermediate, hidden]: gate_proj then up_proj.</summary>
    public required Tensor gate_up_proj { get; init; }
    public required Tensor down_proj { get; init; }

    public IEnumerable<Tensor> All()
    {
        yield return input_layernorm; yield return qkv_proj;
        if (qkv_proj_bias is not null) yield return qkv_proj_bias;
        yield return o_proj; yield return post_attention_layernorm; yield return gate_up_proj; yield return down_proj;
    }

    public void Dispose() { foreach (var t in All()) t.Dispose(); }
}

/// <summary>
/// A decoder's immutable weights (Qwen2 / Llama). Per-sequence state lives in a <see cref="KvBlockTable"/> over the engine's <see cref="KvBlockPool"/>, never here,
/// so one set of weights serves many sequences.
/// </summary>
public sealed class DecoderWeights : IDisposable
{
    public ModelConfig Config { get; }
    /// <summary>The compute dtype: activations, norms, biases and the KV cache.</summary>
    public ScalarType Dtype { get; }
    /// <summary>The dtype the weight matrices (projections, embedding, lm_head) are stored in: <see cref="Dtype"/>, or
    /// bfloat16 or int8 (<see cref="Int8Matrix"/>) under float32 arithmetic on the CPU kernel (see <see cref="DeviceAndDtype.ResolveDtypes"/>).</summary>
    public ScalarType MatrixDtype { get; }
    public Device Device { get; }
    public Tensor embed_tokens { get; }
    public Tensor norm { get; }
    /// <summary>The output projection; the same tensor as <see cref="embed_tokens"/> when embeddings are tied.</summary>
    public Tensor lm_head { get; }
    public IReadOnlyList<LayerWeights> layers { get; }

    private DecoderWeights(ModelConfig config, ScalarType dtype, ScalarType matrixDtype, Device device, Tensor embed, Tensor norm, Tensor lmHead, LayerWeights[] layers)
    {
        Config = config; Dtype = dtype; MatrixDtype = matrixDtype; Device = device;
        embed_tokens = embed; this.norm = norm; lm_head = lmHead; this.layers = layers;
    }
#pragma warning restore IDE1006

    /// <summary>The exact bytes <see cref="Load"/> and <see cref="Random"/> allocate for <paramref name="c"/>: the matrices
    /// (embedding, lm_head when untied, projections) in <paramref name="matrixDtype"/>, norms and biases in
    /// <paramref name="dtype"/>. The memory plan checks a format against the budget with it before loading.</summary>
    public static long ByteSize(ModelConfig c, ScalarType dtype, ScalarType matrixDtype)
    {
        long e = DeviceAndDtype.ElementSize(dtype);
        int h = c.HiddenSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim, inter = c.IntermediateSize;
        // An [n, k] matrix: n rows of k elements, an int8 row with its scales.
        long M(long n, int k) => n * (matrixDtype == ScalarType.Int8 ? Int8Matrix.RowBytes(k) : (long)k * DeviceAndDtype.ElementSize(matrixDtype));
        long matrices = M((long)c.VocabSize * (c.TieWordEmbeddings ? 1 : 2), h)
                        + c.NumHiddenLayers * (M(q + 2L * kv, h) + M(h, q) + M(2L * inter, h) + M(h, inter));
        long vectors = h + (long)c.NumHiddenLayers * (2 * h + (c.AttentionBias ? q + 2 * kv : 0));
        return matrices + vectors * e;
    }

    public long ByteSize()
    {
        static long Bytes(Tensor t) => t.NumberOfElements * DeviceAndDtype.ElementSize(t.dtype);
        return Bytes(embed_tokens) + Bytes(norm) + (ReferenceEquals(lm_head, embed_tokens) ? 0 : Bytes(lm_head))
               + layers.Sum(l => l.All().Sum(Bytes));
    }

    /// <summary>
    /// Loads every tensor the architecture needs, checking names and shapes; extra tensors in the file
    /// (other than rotary caches some exporters write) are refused, so that a wrong checkpoint cannot load silently.
    /// </summary>
    /// <param name="matrixDtype">The weight matrices' dtype (<see cref="MatrixDtype"/>); null: <paramref name="dtype"/>.</param>
    public static DecoderWeights Load(Checkpoint.Checkpoint ckpt, ModelConfig c, ScalarType dtype, Device device, ScalarType? matrixDtype = null)
    {
        var expected = new HashSet<string>(StringComparer.Ordinal);
        var md = matrixDtype ?? dtype;
        Tensor Read(string name, ScalarType to, long[] shape)
        {
            expected.Add(name);
            var raw = ckpt.Read(name, shape);
            if (to == ScalarType.Int8) using (raw) return Int8Matrix.Quantize(raw).DetachFromDisposeScope();
            if (raw.dtype == to && device.type == DeviceType.CPU) return raw.DetachFromDisposeScope();
            using (raw) return raw.to(to, device).DetachFromDisposeScope();
        }
        Tensor Get(string name, params long[] shape) => Read(name, dtype, shape);
        Tensor Matrix(string name, params long[] shape) => Read(name, md, shape);
        Tensor Cat(params Tensor[] parts)
        {
            var t = cat(parts, 0).DetachFromDisposeScope();
            foreach (var p in parts) p.Dispose();
            return t;
        }

        using var noGrad = no_grad();
        long h = c.HiddenSize, q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.NumKeyValueHeads * c.HeadDim, inter = c.IntermediateSize;
        var built = new List<IDisposable>();
        try
        {
            var embed = Matrix("model.embed_tokens.weight", c.VocabSize, h); built.Add(embed);
            var finalNorm = Get("model.norm.weight", h); built.Add(finalNorm);
            Tensor lmHead = embed;
            if (!c.TieWordEmbeddings) { lmHead = Matrix("lm_head.weight", c.VocabSize, h); built.Add(lmHead); }
            else if (ckpt.Contains("lm_head.weight"))
            {
                // Some exporters write the tied head anyway; it must equal the embedding, so it is not read twice.
                expected.Add("lm_head.weight");
            }

            var layers = new LayerWeights[c.NumHiddenLayers];
            for (int i = 0; i < c.NumHiddenLayers; i++)
            {
                string p = $"model.layers.{i}.";
                var layer = new LayerWeights
                {
                    input_layernorm = Get(p + "input_layernorm.weight", h),
                    qkv_proj = Cat(Matrix(p + "self_attn.q_proj.weight", q, h), Matrix(p + "self_attn.k_proj.weight", kv, h), Matrix(p + "self_attn.v_proj.weight", kv, h)),
                    qkv_proj_bias = c.AttentionBias
                        ? Cat(Get(p + "self_attn.q_proj.bias", q), Get(p + "self_attn.k_proj.bias", kv), Get(p + "self_attn.v_proj.bias", kv))
                        : null,
                    o_proj = Matrix(p + "self_attn.o_proj.weight", h, q),
                    post_attention_layernorm = Get(p + "post_attention_layernorm.weight", h),
                    gate_up_proj = Cat(Matrix(p + "mlp.gate_proj.weight", inter, h), Matrix(p + "mlp.up_proj.weight", inter, h)),
                    down_proj = Matrix(p + "mlp.down_proj.weight", h, inter),
                };
                layers[i] = layer;
                built.Add(layer);
            }
            var unexpected = ckpt.TensorNames.Where(n => !expected.Contains(n) && !n.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal))
                .OrderBy(n => n, StringComparer.Ordinal).ToList();
            if (unexpected.Count > 0)
                throw new InvalidDataException($"{ckpt.Folder}: unexpected tensor '{unexpected[0]}'" +
                                               (unexpected.Count > 1 ? $" (and {unexpected.Count - 1} more)" : "") +
                                               $" for {c.Architecture}");
            return new DecoderWeights(c, dtype, md, device, embed, finalNorm, lmHead, layers);
        }
        catch
        {
            foreach (var d in built) d.Dispose();
            throw;
        }
    }

    /// <summary>Random weights of the config's shape (like vLLM's dummy load format), for benchmarks without a download.</summary>
    public static DecoderWeights Random(ModelConfig c, ScalarType dtype, Device device, long seed = 0, ScalarType? matrixDtype = null)
    {
        using var noGrad = no_grad();
        var md = matrixDtype ?? dtype;
        ulong stream = 0;
        Tensor RandAs(ScalarType to, long[] shape)
        {
            var host = RandomFill.Uniform(shape, to == ScalarType.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32, (ulong)seed, stream++);
            if (to == ScalarType.Int8) using (host) return Int8Matrix.Quantize(host).DetachFromDisposeScope();
            if (host.dtype == to && device.type == DeviceType.CPU) return host.DetachFromDisposeScope();
            using (host) return host.to(to, device).DetachFromDisposeScope();
        }
        Tensor Rand(params long[] shape) => RandAs(dtype, shape);
        Tensor RandMatrix(params long[] shape) => RandAs(md, shape);
        Tensor Ones(long n) => ones(n, dtype, device).DetachFromDisposeScope();
        long h = c.HiddenSize, q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.NumKeyValueHeads * c.HeadDim, inter = c.IntermediateSize;
        var embed = RandMatrix(c.VocabSize, h);
        var lmHead = c.TieWordEmbeddings ? embed : RandMatrix(c.VocabSize, h);
        var layers = Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new LayerWeights
        {
            input_layernorm = Ones(h),
            qkv_proj = RandMatrix(q + 2 * kv, h),
            qkv_proj_bias = c.AttentionBias ? Rand(q + 2 * kv) : null,
            o_proj = RandMatrix(h, q),
            post_attention_layernorm = Ones(h),
            gate_up_proj = RandMatrix(2 * inter, h),
            down_proj = RandMatrix(h, inter),
        }).ToArray();
        return new DecoderWeights(c, dtype, md, device, embed, Ones(h), lmHead, layers);
    }

    public void Dispose()
    {
        foreach (var l in layers) l.Dispose();
        if (!ReferenceEquals(lm_head, embed_tokens)) lm_head.Dispose();
        embed_tokens.Dispose();
        norm.Dispose();
    }
}
