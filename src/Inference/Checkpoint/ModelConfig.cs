using System.Text.Json;
using System.Text.Json.Nodes;

namespace ActorQuery.Inference.Checkpoint;

/// <summary>Rotary-embedding frequency scaling, as config.json's rope_scaling / rope_parameters describe it.</summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);

/// <summary>
/// The parts of a Hugging Face config.json that the decoder needs. Reads the classic keys (rope_theta,
/// rope_scaling) and the newer rope_parameters form; unsupported architectures and rope types are refused
/// with an error that names the file.
/// </summary>
public sealed record ModelConfig
{
    public static readonly IReadOnlyList<string> SupportedArchitectures = ["Qwen2ForCausalLM", "LlamaForCausalLM"];

    public required string Architecture { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public required double RmsNormEps { get; init; }
    public required double RopeTheta { get; init; }
    public RopeScaling? RopeScaling { get; init; }
    public required bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections carry a bias (Qwen2 always; Llama when attention_bias).</summary>
    public required bool AttentionBias { get; init; }
    public required bool MlpBias { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public string? TorchDtype { get; init; }

    public bool IsQwen2 => Architecture == "Qwen2ForCausalLM";

    public long ParameterCount()
    {
        long h = HiddenSize, kv = (long)NumKeyValueHeads * HeadDim, q = (long)NumAttentionHeads * HeadDim;
        long attn = h * q + 2 * h * kv + q * h + (AttentionBias ? q + 2 * kv : 0);
        long mlp = 3 * h * IntermediateSize + (MlpBias ? 2L * IntermediateSize + h : 0);
        long layer = attn + mlp + 2 * h;
        return (long)VocabSize * h * (TieWordEmbeddings ? 1 : 2) + NumHiddenLayers * layer + h;
    }

    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: config.json not found", path);
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e); }
        if (root is not JsonObject o) throw new InvalidDataException($"{path}: expected a JSON object");
        return Parse(o, path);
    }

    public static ModelConfig Parse(JsonObject o, string source)
    {
        string arch = o["architectures"] is JsonArray a && a.Count > 0 ? a[0]!.GetValue<string>() : "";
        if (string.IsNullOrEmpty(arch))
        {
            arch = (string?)o["model_type"] switch { "qwen2" => "Qwen2ForCausalLM", "llama" => "LlamaForCausalLM", _ => "" };
        }
        if (!SupportedArchitectures.Contains(arch))
            throw new NotSupportedException(
                $"{source}: unsupported architecture '{(arch == "" ? "(none)" : arch)}'; supported: {string.Join(", ", SupportedArchitectures)}");

        int Req(string key)
        {
            var n = o[key] ?? throw new InvalidDataException($"{source}: missing '{key}'");
            return n.GetValue<int>();
        }
        int hidden = Req("hidden_size"), heads = Req("num_attention_heads");
        int kvHeads = o["num_key_value_heads"]?.GetValue<int>() ?? heads;
        int headDim = o["head_dim"]?.GetValue<int>() ?? hidden / heads;
        if (heads % kvHeads != 0)
            throw new InvalidDataException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");

        // rope_theta: classic top-level key, or inside the newer rope_parameters object.
        var ropeParams = o["rope_parameters"] as JsonObject;
        double theta = o["rope_theta"]?.GetValue<double>() ?? ropeParams?["rope_theta"]?.GetValue<double>() ?? 10000.0;
        var scalingNode = o["rope_scaling"] as JsonObject ?? ropeParams;
        RopeScaling? scaling = null;
        if (scalingNode is not null)
        {
            string type = (string?)scalingNode["rope_type"] ?? (string?)scalingNode["type"] ?? "default";
            if (type is not ("default" or "linear" or "llama3"))
                throw new NotSupportedException($"{source}: unsupported rope scaling type '{type}'; supported: default, linear, llama3");
            if (type != "default")
            {
                scaling = new RopeScaling(type,
                    scalingNode["factor"]?.GetValue<double>() ?? throw new InvalidDataException($"{source}: rope scaling '{type}' needs 'factor'"),
                    scalingNode["low_freq_factor"]?.GetValue<double>() ?? 1.0,
                    scalingNode["high_freq_factor"]?.GetValue<double>() ?? 4.0,
                    scalingNode["original_max_position_embeddings"]?.GetValue<int>() ?? 8192);
            }
        }
        bool qwen = arch == "Qwen2ForCausalLM";
        return new ModelConfig
        {
            Architecture = arch,
            VocabSize = Req("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = Req("intermediate_size"),
            NumHiddenLayers = Req("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            MaxPositionEmbeddings = o["max_position_embeddings"]?.GetValue<int>() ?? 2048,
            RmsNormEps = o["rms_norm_eps"]?.GetValue<double>() ?? 1e-6,
            RopeTheta = theta,
            RopeScaling = scaling,
            TieWordEmbeddings = o["tie_word_embeddings"]?.GetValue<bool>() ?? qwen,
            AttentionBias = qwen || (o["attention_bias"]?.GetValue<bool>() ?? false),
            MlpBias = o["mlp_bias"]?.GetValue<bool>() ?? false,
            BosTokenId = o["bos_token_id"] is JsonValue b ? b.GetValue<int>() : null,
            EosTokenIds = ReadIds(o["eos_token_id"]),
            TorchDtype = (string?)o["torch_dtype"] ?? (string?)o["dtype"],
        };
    }

    internal static IReadOnlyList<int> ReadIds(JsonNode? n) => n switch
    {
        null => [],
        JsonArray arr => arr.Select(x => x!.GetValue<int>()).ToArray(),
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => [v.GetValue<int>()],
        _ => [],
    };
}

/// <summary>generation_config.json: the model's own stop tokens and default sampling, when the folder has one.</summary>
public sealed record GenerationDefaults(IReadOnlyList<int> EosTokenIds, float? Temperature, float? TopP, int? TopK, float? RepetitionPenalty, bool? DoSample)
{
    public static GenerationDefaults? Load(string folder)
    {
        var path = Path.Combine(folder, "generation_config.json");
        if (!File.Exists(path)) return null;
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                    ?? throw new InvalidDataException($"{path}: expected a JSON object");
            return new GenerationDefaults(ModelConfig.ReadIds(o["eos_token_id"]),
                o["temperature"]?.GetValue<float>(), o["top_p"]?.GetValue<float>(), o["top_k"]?.GetValue<int>(),
                o["repetition_penalty"]?.GetValue<float>(), o["do_sample"]?.GetValue<bool>());
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e); }
    }
}
