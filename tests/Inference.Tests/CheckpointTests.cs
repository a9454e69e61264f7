using System.Text.Json;
using System.Text.Json.Nodes;
using ActorQuery.Contracts;
using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Engine;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Tests;

/// <summary>Loading checkpoints in every layout Hugging Face ships, and the errors a user sees when one is wrong.</summary>
[Collection(TorchGlobalState.Name)]
public sealed class CheckpointTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("aq-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    /// <summary>A copy of a fixture model whose tensors were passed through <paramref name="edit"/>.</summary>
    private string CopyWith(string fixture, Action<Dictionary<string, Tensor>>? edit = null, Action<JsonObject>? editConfig = null)
    {
        var dir = Path.Combine(_tmp, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Dir(fixture), "config.json")))!.AsObject();
        editConfig?.Invoke(config);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var tensors = ReadAll(Path.Combine(Fixtures.Dir(fixture), "model.safetensors"));
        edit?.Invoke(tensors);
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return dir;
    }

    private static Dictionary<string, Tensor> ReadAll(string path)
    {
        using var f = new SafetensorsFile(path);
        return f.Entries.Values.ToDictionary(e => e.Name, f.Read);
    }

    private static InferenceEngine Load(string dir) =>
        InferenceEngine.Load(new EngineOptions { ModelPath = dir, Dtype = "float32", Device = "cpu" });

    private static float[] Logits(string dir, int[] ids)
    {
        using var e = Load(dir);
        var l = e.ScoreAllPositions(ids);
        return l.Cast<float>().ToArray();
    }

    [Fact]
    public void Sharded_checkpoint_with_index_gives_the_same_logits_as_one_file()
    {
        var ids = Fixtures.Cases("llama3-tiny-f32")[1].InputIds;
        var dir = Path.Combine(_tmp, "sharded");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(Fixtures.Dir("llama3-tiny-f32"), "config.json"), Path.Combine(dir, "config.json"));
        var tensors = ReadAll(Path.Combine(Fixtures.Dir("llama3-tiny-f32"), "model.safetensors"));
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var shards = new[] { names.Take(names.Count / 2).ToList(), names.Skip(names.Count / 2).ToList() };
        var weightMap = new Dictionary<string, string>();
        for (int s = 0; s < 2; s++)
        {
            var file = $"model-0000{s + 1}-of-00002.safetensors";
            SafetensorsWriter.Write(Path.Combine(dir, file), shards[s].ToDictionary(n => n, n => tensors[n]));
            foreach (var n in shards[s]) weightMap[n] = file;
        }
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"),
            JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));
        foreach (var t in tensors.Values) t.Dispose();

        Assert.Equal(Logits(Fixtures.Dir("llama3-tiny-f32"), ids), Logits(dir, ids));
    }

    [Fact]
    public void Bf16_weights_stored_as_f16_or_f32_load_to_the_same_values()
    {
        // The bf16 fixture's values are exactly representable in f32; store them as F32 and compare logits.
        var ids = Fixtures.Cases("qwen2-tiny-bf16")[0].InputIds;
        var asF32 = CopyWith("qwen2-tiny-bf16", t =>
        {
            foreach (var k in t.Keys.ToList()) t[k] = t[k].to(ScalarType.Float32);
        });
        Assert.Equal(Logits(Fixtures.Dir("qwen2-tiny-bf16"), ids), Logits(asF32, ids));
    }

    [Fact]
    public void Missing_tensor_is_named()
    {
        var dir = CopyWith("qwen2-tiny-f32", t => t.Remove("model.layers.1.mlp.up_proj.weight"));
        var e = Assert.Throws<InvalidDataException>(() => Load(dir));
        Assert.Contains("missing tensor 'model.layers.1.mlp.up_proj.weight'", e.Message);
    }

    [Fact]
    public void Unexpected_tensor_is_named()
    {
        var dir = CopyWith("qwen2-tiny-f32", t => t["model.layers.9.extra.weight"] = zeros(3));
        var e = Assert.Throws<InvalidDataException>(() => Load(dir));
        Assert.Contains("unexpected tensor 'model.layers.9.extra.weight'", e.Message);
    }

    [Fact]
    public void Shape_mismatch_names_file_tensor_and_both_shapes()
    {
        var dir = CopyWith("qwen2-tiny-f32", t => t["model.norm.weight"] = ones(63));
        var e = Assert.Throws<InvalidDataException>(() => Load(dir));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("'model.norm.weight' has shape [63], expected [64]", e.Message);
    }

    [Fact]
    public void Unreadable_dtype_is_named()
    {
        var dir = CopyWith("qwen2-tiny-f32", t => t["model.norm.weight"] = ones(64, ScalarType.Int64));
        var e = Assert.Throws<NotSupportedException>(() => Load(dir));
        Assert.Contains("'model.norm.weight' has dtype I64", e.Message);
    }

    [Fact]
    public void Truncated_file_is_reported_with_the_tensor_that_runs_past_the_end()
    {
        var dir = CopyWith("qwen2-tiny-f32");
        var path = Path.Combine(dir, "model.safetensors");
        using (var f = File.OpenWrite(path)) f.SetLength(f.Length - 100);
        var e = Assert.Throws<InvalidDataException>(() => Load(dir));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void Unsupported_architecture_is_refused_with_the_supported_list()
    {
        var dir = CopyWith("qwen2-tiny-f32", editConfig: c => c["architectures"] = new JsonArray("MistralForCausalLM"));
        var e = Assert.Throws<NotSupportedException>(() => Load(dir));
        Assert.Contains("unsupported architecture 'MistralForCausalLM'", e.Message);
        Assert.Contains("Qwen2ForCausalLM", e.Message);
    }

    [Fact]
    public void Newer_rope_parameters_form_gives_the_same_logits_as_classic_keys()
    {
        var ids = Fixtures.Cases("llama3-tiny-f32")[1].InputIds;
        var dir = CopyWith("llama3-tiny-f32", editConfig: c =>
        {
            var scaling = c["rope_scaling"]!.AsObject();
            var rp = JsonNode.Parse(scaling.ToJsonString())!.AsObject();
            rp["rope_theta"] = c["rope_theta"]!.GetValue<double>();
            c.Remove("rope_scaling");
            c.Remove("rope_theta");
            c["rope_parameters"] = rp;
        });
        Assert.Equal(Logits(Fixtures.Dir("llama3-tiny-f32"), ids), Logits(dir, ids));
    }

    [Fact]
    public void Linear_rope_scaling_changes_positions_but_not_the_first_token()
    {
        var ids = Fixtures.Cases("llama3-tiny-f32")[1].InputIds;
        var dir = CopyWith("llama3-tiny-f32", editConfig: c =>
            c["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 2.0 });
        var baseline = Logits(Fixtures.Dir("llama3-tiny-f32"), ids);
        var scaled = Logits(dir, ids);
        int vocab = 384;
        Assert.Equal(baseline.Take(vocab), scaled.Take(vocab)); // position 0 has no rotation
        Assert.NotEqual(baseline.Skip(vocab), scaled.Skip(vocab));
    }

    [Fact]
    public void Unsupported_rope_type_is_refused()
    {
        var dir = CopyWith("llama3-tiny-f32", editConfig: c =>
            c["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 });
        var e = Assert.Throws<NotSupportedException>(() => Load(dir));
        Assert.Contains("unsupported rope scaling type 'yarn'", e.Message);
    }
}
