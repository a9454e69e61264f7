using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Training;

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

    /// <summary>
    /// The safetensors layout (8-byte little-endian header length, JSON header, raw little-endian data),
    /// written by hand because TorchSharp has no safetensors writer and the format is a page long. F32 only.
    /// </summary>
    public static void WriteSafetensors(string path, IEnumerable<(string Name, Tensor Tensor)> tensors)
    {
        var items = tensors.OrderBy(t => t.Name, StringComparer.Ordinal)
            .Select(t => (t.Name, Data: t.Tensor.detach().cpu().to(float32).contiguous().data<float>().ToArray(), Shape: t.Tensor.shape))
            .ToList();
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, data, shape) in items)
        {
            long bytes = data.Length * 4L;
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = header.ToJsonString();
        int padded = (Encoding.UTF8.GetByteCount(json) + 7) / 8 * 8; // data starts 8-byte aligned
        json = json.PadRight(json.Length + padded - Encoding.UTF8.GetByteCount(json));
        using var f = new BinaryWriter(File.Create(path));
        f.Write((ulong)padded);
        f.Write(Encoding.UTF8.GetBytes(json));
        foreach (var (_, data, _) in items)
        {
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors is little-endian");
            f.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
        }
    }

    public static string Describe(Qwen2TrainingModel model) =>
        string.Create(CultureInfo.InvariantCulture, $"hidden {model.Config.HiddenSize}, layers {model.Config.NumLayers}, heads {model.Config.NumHeads}/{model.Config.NumKeyValueHeads}, mlp {model.Config.IntermediateSize}, vocab {model.Config.VocabSize}, params {model.parameters().Sum(p => p.numel())}");
}
