using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace ActorQuery.DefaultModel.Training;

/// <summary>
/// Writes a complete Hugging Face model folder (config.json, generation_config.json, model.safetensors,
/// tokenizer.json, tokenizer_config.json) that loads like a downloaded Qwen2 checkpoint.
/// </summary>
public static class HfFolderWriter
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static void Write(string dir, Qwen2TrainingModel model, TrainingTokenizer tokenizer, int maxPositions = 512)
    {
        Directory.CreateDirectory(dir);
        var c = model.Config;
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("Qwen2ForCausalLM"),
            ["attention_dropout"] = 0.0,
            ["bos_token_id"] = tokenizer.EndOfTextId,
            ["eos_token_id"] = tokenizer.ImEndId,
            ["hidden_act"] = "silu",
            ["hidden_size"] = c.HiddenSize,
            ["initializer_range"] = 0.02,
            ["intermediate_size"] = c.IntermediateSize,
            ["max_position_embeddings"] = maxPositions,
            ["model_type"] = "qwen2",
            ["num_attention_heads"] = c.NumHeads,
            ["num_hidden_layers"] = c.NumLayers,
            ["num_key_value_heads"] = c.NumKeyValueHeads,
            ["rms_norm_eps"] = c.RmsNormEps,
            ["rope_theta"] = c.RopeTheta,
            ["tie_word_embeddings"] = true,
            ["torch_dtype"] = "float32",
            ["transformers_version"] = "4.45.0",
            ["use_cache"] = true,
            ["use_sliding_window"] = false,
            ["vocab_size"] = c.VocabSize,
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(Indented) + "\n");
        var generation = new JsonObject
        {
            ["bos_token_id"] = tokenizer.EndOfTextId,
            ["do_sample"] = false,
            // Chat answers end with <|im_end|>, plain-prompt answers with <|endoftext|>: stop on either.
            ["eos_token_id"] = new JsonArray(tokenizer.ImEndId, tokenizer.EndOfTextId),
            ["pad_token_id"] = tokenizer.EndOfTextId,
            ["transformers_version"] = "4.45.0",
        };
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), generation.ToJsonString(Indented) + "\n");
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokenizer.ToTokenizerJson() + "\n");
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), tokenizer.ToTokenizerConfigJson() + "\n");
        WriteSafetensors(Path.Combine(dir, "model.safetensors"), model.HfStateDict());
    }

    /// <summary>Writes the weights as F32 safetensors with the tensors' Hugging Face names.</summary>
    public static void WriteSafetensors(string path, IEnumerable<(string Name, Tensor Tensor)> tensors)
    {
        var f32 = tensors.ToDictionary(t => t.Name, t => t.Tensor.detach().cpu().to(float32).contiguous());
        try { ActorQuery.Inference.Checkpoint.SafetensorsWriter.Write(path, f32, new Dictionary<string, string> { ["format"] = "pt" }); }
        finally { foreach (var t in f32.Values) t.Dispose(); }
    }

    public static string Describe(Qwen2TrainingModel model) =>
        string.Create(CultureInfo.InvariantCulture, $"hidden {model.Config.HiddenSize}, layers {model.Config.NumLayers}, heads {model.Config.NumHeads}/{model.Config.NumKeyValueHeads}, mlp {model.Config.IntermediateSize}, vocab {model.Config.VocabSize}, params {model.parameters().Sum(p => p.numel())}");
}
