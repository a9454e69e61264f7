using System.Net;
using System.Text;
using System.Text.Json;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The shipped server (Kestrel, the router, a worker process over remoting) reports how many prompt tokens came from
/// the engine's prefix cache, as OpenAI's <c>usage.prompt_tokens_details.cached_tokens</c>, on every generation
/// endpoint, and counts them in /metrics; <c>--prefix-caching false</c> turns it off. The answer cache is off
/// (<see cref="DefaultModelServer"/>), so an identical prompt reaches the engine again.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class PrefixCacheServeTests
{
    /// <summary>A prompt of well over ten KV blocks for the default model's tokenizer.</summary>
    private static readonly string LongPrompt = string.Concat(Enumerable.Range(1, 24).Select(i => $"{i}+{i}={2 * i}\n"));

    private static async Task<JsonElement> Usage(DefaultModelServer server, string path, object body)
    {
        using var r = await server.Http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, $"{path}: {(int)r.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("usage").Clone();
    }

    private static int Cached(JsonElement usage) => usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_second_identical_long_prompt_reports_cached_prompt_tokens_unless_prefix_caching_is_off(bool prefixCaching)
    {
        await using var server = await DefaultModelServer.StartAsync(["--prefix-caching", prefixCaching ? "true" : "false"]);
        var completion = new { prompt = LongPrompt, max_tokens = 2, temperature = 0 };
        var chat = new { messages = new[] { new { role = "user", content = LongPrompt } }, max_tokens = 2, temperature = 0 };

        var firstCompletion = await Usage(server, "/v1/completions", completion);
        var secondCompletion = await Usage(server, "/v1/completions", completion);
        var firstChat = await Usage(server, "/v1/chat/completions", chat);
        var secondChat = await Usage(server, "/v1/chat/completions", chat);
        var native = await Usage(server, "/query", new { prompt = LongPrompt, max_new_tokens = 2, temperature = 0 });

        int promptTokens = secondCompletion.GetProperty("prompt_tokens").GetInt32();
        Assert.True(promptTokens > 64, $"the prompt is {promptTokens} tokens: too short to span several blocks");
        Assert.Equal(0, Cached(firstCompletion));
        Assert.Equal(0, Cached(firstChat));
        var metrics = await server.Http.GetStringAsync("/metrics");
        var counted = metrics.Split('\n').Single(l => l.StartsWith("actorquery_prompt_tokens_cached_total ", StringComparison.Ordinal));
        if (prefixCaching)
        {
            // Whole blocks of 16, never the last token: the cached part is at most the prompt less one token.
            Assert.InRange(Cached(secondCompletion), promptTokens - 16, promptTokens - 1);
            Assert.InRange(Cached(secondChat), 16, secondChat.GetProperty("prompt_tokens").GetInt32() - 1);
            Assert.InRange(Cached(native), promptTokens - 16, promptTokens - 1);   // the same tokens as the completions'
            Assert.Equal(Cached(secondCompletion) + Cached(secondChat) + Cached(native), (int)double.Parse(counted.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture));
        }
        else
        {
            Assert.Equal(0, Cached(secondCompletion));
            Assert.Equal(0, Cached(secondChat));
            Assert.Equal(0, Cached(native));
            Assert.Equal("actorquery_prompt_tokens_cached_total 0", counted.Trim());
        }
    }
}
