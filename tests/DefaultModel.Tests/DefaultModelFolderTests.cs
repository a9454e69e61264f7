using System.Text.Json.Nodes;
using ActorQuery.Contracts;
using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Engine;

namespace ActorQuery.DefaultModel.Tests;

/// <summary>models/default is a complete Hugging Face Qwen2 folder that loads like a downloaded one.</summary>
[Collection(TorchGlobalState.Name)]
public class DefaultModelFolderTests
{
    private static string FilePath(string name) => Path.Combine(DefaultModelFolder.Path, name);

    [Fact]
    public void Config_is_a_small_tied_qwen2()
    {
        var c = ModelConfig.Load(FilePath("config.json"));
        Assert.Equal("Qwen2ForCausalLM", c.Architecture);
        Assert.True(c.TieWordEmbeddings);
        Assert.True(c.AttentionBias);
        Assert.True(new FileInfo(FilePath("model.safetensors")).Length <= 10_000_000, "weights must stay within 10 MB");
    }

    [Fact]
    public void Generation_stops_at_end_of_turn_and_at_end_of_text()
    {
        var tokenizer = JsonNode.Parse(File.ReadAllText(FilePath("tokenizer.json")))!;
        int Id(string token) => tokenizer["added_tokens"]!.AsArray().Single(t => (string?)t!["content"] == token)!["id"]!.GetValue<int>();
        using var engine = InferenceEngine.Load(new EngineOptions { ModelPath = DefaultModelFolder.Path, Device = "cpu", Dtype = "float32" });
        Assert.Contains(Id("<|im_end|>"), engine.Model.EosTokenIds);
        Assert.Contains(Id("<|endoftext|>"), engine.Model.EosTokenIds);
        Assert.True(engine.Model.ParameterCount < 3_000_000);
    }
}
