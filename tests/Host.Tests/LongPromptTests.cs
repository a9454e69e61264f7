using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ActorQuery.Host.Tests;

/// <summary>
/// A prompt near a 32k context crosses remoting whole: the server's worker process (the default) receives every query
/// over Akka.Remote as one RunQuery frame (30,000 token ids are ~90 KB as varints; a 128k context of Llama 3.1 is ~380 KB,
/// over remoting's default frame of 128,000 bytes, hence hocon/cluster.hocon's 4 MiB). The model is the Qwen2.5
/// tokenizer over a one-layer model of width 64 with random weights, so that prefilling 30,000 tokens takes seconds.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class LongPromptTests
{
    [Fact]
    public async Task A_30000_token_prompt_is_served_by_the_worker_process_across_remoting()
    {
        var folder = Directory.CreateTempSubdirectory("aq-long-").FullName;
        var shape = Path.Combine(RepoFixtures.Root, "models", "shapes", "qwen2.5-0.5b");
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json", "generation_config.json" })
            File.Copy(Path.Combine(shape, f), Path.Combine(folder, f));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(shape, "config.json")))!.AsObject();
        config["hidden_size"] = 64;
        config["intermediate_size"] = 128;
        config["num_hidden_layers"] = 1;
        config["num_attention_heads"] = 4;
        config["num_key_value_heads"] = 2;
        config["max_window_layers"] = 1;
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());

        await using var server = await DefaultModelServer.StartAsync(["--dummy-weights", "--kv-cache-size", "64MiB"],
            new() { ["ActorQuery:ModelFolder"] = folder });
        var prompt = "Summarize:" + string.Concat(Enumerable.Repeat(" hello", 30_000));
        using var r = await server.Http.PostAsync("/v1/completions", new StringContent(
            JsonSerializer.Serialize(new { prompt, max_tokens = 2, temperature = 0 }), Encoding.UTF8, "application/json"));

        var body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, $"{(int)r.StatusCode}: {body}");
        var usage = JsonDocument.Parse(body).RootElement.GetProperty("usage");
        Assert.InRange(usage.GetProperty("prompt_tokens").GetInt32(), 30_000, 30_010);
        Assert.Equal(2, usage.GetProperty("completion_tokens").GetInt32());
    }
}
