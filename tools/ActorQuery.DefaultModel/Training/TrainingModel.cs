using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ActorQuery.DefaultModel.Training;

/// <summary>Shape of the default model; written to config.json as a Qwen2ForCausalLM config.</summary>
public sealed record TrainingModelConfig(
    int VocabSize,
    int HiddenSize = 128,
    int NumLayers = 4,
    int NumHeads = 4,
    int NumKeyValueHeads = 2,
    int IntermediateSize = 512,
    double RopeTheta = 10000.0,
    double RmsNormEps = 1e-6)
{
    public int HeadDim => HiddenSize / NumHeads;
}

/// <summary>
/// Qwen2 decoder for training (autograd, whole sequences, no KV cache): the math of HF's Qwen2ForCausalLM with
/// tied embeddings. Serving does not use this class; it loads the safetensors this one writes through the
/// engine, so the two must agree on every detail (rotate-half RoPE, RMSNorm in float32, q/k/v bias, GQA).
/// </summary>
public sealed class Qwen2TrainingModel : Module<Tensor, Tensor>
{
    public TrainingModelConfig Config { get; }

#pragma warning disable IDE1006, SA1300 // HF tensor names
    private readonly Embedding embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNorm norm;
#pragma warning restore IDE1006, SA1300

    public Qwen2TrainingModel(TrainingModelConfig config) : base("model")
    {
        Config = config;
        embed_tokens = Embedding(config.VocabSize, config.HiddenSize);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, config.NumLayers).Select(i => new DecoderLayer(config)).ToArray());
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        RegisterComponents();
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) continue;
            if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else p.normal_(0, 0.02); // HF initializer_range
        }
    }

    /// <summary>Logits [batch, seq, vocab] for right-padded input ids [batch, seq] (causal attention, so
    /// padding after a sequence never changes its logits).</summary>
    public override Tensor forward(Tensor inputIds) => Logits(Hidden(inputIds));

    /// <summary>The final hidden states [batch, seq, hidden] (after the last norm).</summary>
    public Tensor Hidden(Tensor inputIds)
    {
        var states = HiddenStates(inputIds);
        foreach (var s in states[..^1]) s.Dispose(); // only the last is asked for; the others would wait for the GC
        return states[^1];
    }

    /// <summary>The residual stream after each decoder layer, then the final hidden states (after the last
    /// norm): <see cref="TrainingModelConfig.NumLayers"/> + 1 tensors [batch, seq, hidden]. Training reads the
    /// intermediate ones for its auxiliary losses.</summary>
    public Tensor[] HiddenStates(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        long seq = inputIds.shape[1];
        var (cos, sin) = Rope(seq, inputIds.device);
        var h = embed_tokens.forward(inputIds);
        var states = new Tensor[layers.Count + 1];
        for (int i = 0; i < layers.Count; i++) states[i] = h = layers[i].forward(h, cos, sin);
        states[^1] = norm.forward(h);
        foreach (var s in states) s.MoveToOuterDisposeScope();
        return states;
    }

    /// <summary>Logits for hidden states of any leading shape (tied lm_head). Training applies it only to the
    /// positions that have a label: with a 1.5k-token vocabulary the head costs as much as a layer.</summary>
    public Tensor Logits(Tensor hidden) => matmul(hidden, embed_tokens.weight!.t());

    /// <summary>Dimensions of a number token's embedding that <see cref="InitNumberEmbeddings"/> sets.</summary>
    public const int NumberFeatures = 36;

    /// <summary>
    /// Starts each number token's embedding from its digits: for the units, tens and hundreds place, cos and sin
    /// of 2πkd/10 (k = 1..5) of the digit d in that place (the digit modulo 10, which sums need), the digit's
    /// value itself (which carries need: a carry is a threshold on a sum, which a periodic feature cannot show),
    /// the number's value, its digit count and whether it has a leading zero, added (scaled to the size of the
    /// random init) to the first 36 dimensions. Gradient descent then trains them like any other weight.
    /// Models that compute sums well represent numbers by such features (Zhou et al. 2024, "Pre-trained LLMs use
    /// Fourier features to compute addition"); a model trained from scratch has to discover them first. In equal
    /// training time this init reached a lower loss than the plain random one.
    /// </summary>
    /// <param name="numberTokens">Token id and its digit string, for every token made only of 1–3 digits.</param>
    public void InitNumberEmbeddings(IEnumerable<(int Id, string Digits)> numberTokens)
    {
        const double Scale = 0.05;
        if (Config.HiddenSize < NumberFeatures) throw new ArgumentException($"hidden size must be >= {NumberFeatures}");
        using var _ = no_grad();
        var weight = embed_tokens.weight!;
        foreach (var (id, digits) in numberTokens)
        {
            var f = new float[NumberFeatures];
            for (int place = 0; place < digits.Length; place++)
            {
                int d = digits[digits.Length - 1 - place] - '0';
                for (int k = 1; k <= 5; k++)
                {
                    f[place * 10 + (k - 1) * 2] = (float)(Scale * Math.Cos(2 * Math.PI * k * d / 10));
                    f[place * 10 + (k - 1) * 2 + 1] = (float)(Scale * Math.Sin(2 * Math.PI * k * d / 10));
                }
                f[32 + place] = (float)(Scale * (d / 4.5 - 1));
            }
            f[30] = (float)(Scale * digits.Length);
            f[31] = digits.Length > 1 && digits[0] == '0' ? (float)Scale : 0f;
            f[35] = (float)(Scale * (int.Parse(digits, System.Globalization.CultureInfo.InvariantCulture) / 500.0 - 1));
            using var row = weight[id].narrow(0, 0, NumberFeatures);
            using var add = tensor(f);
            row.add_(add);
        }
    }

    /// <summary>Parameters under their Hugging Face checkpoint names (no lm_head: tied).</summary>
    public IEnumerable<(string Name, Tensor Tensor)> HfStateDict() =>
        named_parameters().Select(p => ("model." + p.name, (Tensor)p.parameter));

    /// <summary>Copies weights from a folder this class exported (a second training phase starts from them).</summary>
    public void LoadFrom(string folder)
    {
        using var file = new ActorQuery.Inference.Checkpoint.SafetensorsFile(Path.Combine(folder, "model.safetensors"));
        using var _ = no_grad();
        foreach (var (name, p) in HfStateDict())
        {
            if (!file.Entries.TryGetValue(name, out var entry)) throw new InvalidDataException($"{file.Path}: tensor '{name}' missing");
            using var t = file.Read(entry);
            if (!t.shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"{file.Path}: '{name}' is [{string.Join(",", t.shape)}], the model needs [{string.Join(",", p.shape)}]");
            p.copy_(t);
        }
    }

    private (Tensor Cos, Tensor Sin) Rope(long seq, Device device)
    {
        int d = Config.HeadDim;
        var invFreq = pow(Config.RopeTheta, -arange(0, d, 2, float64, device) / d); // [d/2]
        var pos = arange(seq, float64, device); // [seq]
        var freqs = outer(pos, invFreq); // [seq, d/2]
        var emb = cat([freqs, freqs], -1); // [seq, d]
        return (emb.cos().to(float32), emb.sin().to(float32));
    }

    internal static Tensor ApplyRope(Tensor x, Tensor cos, Tensor sin)
    {
        // x: [batch, heads, seq, head_dim]; rotate_half as HF: cat(-x2, x1)
        long half = x.shape[3] / 2;
        var x1 = x.narrow(3, 0, half);
        var x2 = x.narrow(3, half, half);
        var rotated = cat([-x2, x1], 3);
        return x * cos + rotated * sin;
    }

    private sealed class RmsNorm : Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006, SA1300
        private readonly Parameter weight;
#pragma warning restore IDE1006, SA1300
        private readonly double _eps;

        public RmsNorm(int size, double eps) : base("norm")
        {
            weight = Parameter(ones(size));
            _eps = eps;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) =>
            x * rsqrt(x.pow(2).mean([-1L], keepdim: true) + _eps) * weight;
    }

    private sealed class DecoderLayer : Module<Tensor, Tensor>
    {
        private readonly TrainingModelConfig _c;
#pragma warning disable IDE1006, SA1300
        private readonly RmsNorm input_layernorm;
        private readonly RmsNorm post_attention_layernorm;
        private readonly Attention self_attn;
        private readonly Mlp mlp;
#pragma warning restore IDE1006, SA1300

        public DecoderLayer(TrainingModelConfig c) : base("layer")
        {
            _c = c;
            input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
            post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
            self_attn = new Attention(c);
            mlp = new Mlp(c);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => throw new NotSupportedException("needs rope tables");

        public Tensor forward(Tensor x, Tensor cos, Tensor sin)
        {
            var h = x + self_attn.forward(input_layernorm.forward(x), cos, sin);
            return h + mlp.forward(post_attention_layernorm.forward(h));
        }
    }

    private sealed class Attention : Module<Tensor, Tensor>
    {
        private readonly TrainingModelConfig _c;
#pragma warning disable IDE1006, SA1300
        private readonly Linear q_proj, k_proj, v_proj, o_proj;
#pragma warning restore IDE1006, SA1300

        public Attention(TrainingModelConfig c) : base("self_attn")
        {
            _c = c;
            q_proj = Linear(c.HiddenSize, c.NumHeads * c.HeadDim, hasBias: true);
            k_proj = Linear(c.HiddenSize, c.NumKeyValueHeads * c.HeadDim, hasBias: true);
            v_proj = Linear(c.HiddenSize, c.NumKeyValueHeads * c.HeadDim, hasBias: true);
            o_proj = Linear(c.NumHeads * c.HeadDim, c.HiddenSize, hasBias: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => throw new NotSupportedException("needs rope tables");

        public Tensor forward(Tensor x, Tensor cos, Tensor sin)
        {
            long b = x.shape[0], t = x.shape[1];
            int hd = _c.HeadDim, rep = _c.NumHeads / _c.NumKeyValueHeads;
            var q = q_proj.forward(x).view(b, t, _c.NumHeads, hd).transpose(1, 2); // [b, heads, t, hd]
            var k = k_proj.forward(x).view(b, t, _c.NumKeyValueHeads, hd).transpose(1, 2); // [b, kv, t, hd]
            var v = v_proj.forward(x).view(b, t, _c.NumKeyValueHeads, hd).transpose(1, 2); // [b, kv, t, hd]
            q = ApplyRope(q, cos, sin);
            k = ApplyRope(k, cos, sin);
            k = k.repeat_interleave(rep, dim: 1); // [b, heads, t, hd]
            v = v.repeat_interleave(rep, dim: 1); // [b, heads, t, hd]
            var o = functional.scaled_dot_product_attention(q, k, v, is_casual: true); // [b, heads, t, hd]
            return o_proj.forward(o.transpose(1, 2).reshape(b, t, _c.NumHeads * hd)); // [b, t, hidden]
        }
    }

    private sealed class Mlp : Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006, SA1300
        private readonly Linear gate_proj, up_proj, down_proj;
#pragma warning restore IDE1006, SA1300

        public Mlp(TrainingModelConfig c) : base("mlp")
        {
            gate_proj = Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
            up_proj = Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
            down_proj = Linear(c.IntermediateSize, c.HiddenSize, hasBias: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) =>
            down_proj.forward(functional.silu(gate_proj.forward(x)) * up_proj.forward(x));
    }
}
