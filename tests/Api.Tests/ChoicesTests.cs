using System.Net;
using System.Text;
using System.Text.Json;
using ActorQuery.Api.Generation;
using ActorQuery.Api.Tests.Fakes;
using ActorQuery.TestSupport;

namespace ActorQuery.Api.Tests;

/// <summary>
/// n > 1, prompt arrays and echo on the OpenAI endpoints, and logit_bias, over the fake engine (which answers with the
/// prompt's bytes): one query per choice, indexed as OpenAI does, with usage counting each prompt once.
/// </summary>
public sealed class ChoicesTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApiServer Server => shared.Server;

    private async Task<JsonElement> Post(string path, string body, HttpStatusCode expected = HttpStatusCode.OK)
    {
        var r = await Json.PostAsync(Server.Http, path, body);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == expected, $"{(int)r.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static List<string> Texts(JsonElement response, string field = "text") =>
        response.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty(field).GetString()!).ToList();

    [Fact]
    public async Task Chat_with_n_3_gives_three_choices_with_their_own_seeds_and_counts_the_prompt_once()
    {
        var r = await Post("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hey"}], "n": 3, "seed": 4242, "temperature": 0.8}""");
        var choices = r.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(choices, c => Assert.Equal("<user>hey\n<assistant>", c.GetProperty("message").GetProperty("content").GetString()));
        var usage = r.GetProperty("usage");
        Assert.Equal(21, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(63, usage.GetProperty("completion_tokens").GetInt32());

        var sent = Server.Fake.Requests.Where(q => q.QueryId.StartsWith(r.GetProperty("id").GetString()!["chatcmpl-".Length..])).ToList();
        Assert.Equal(3, sent.Count);
        Assert.Equal(4242, sent[0].Sampling.Seed);                    // sample 0 keeps the request's seed
        Assert.Equal(3, sent.Select(q => q.Sampling.Seed).Distinct().Count());
        Assert.Equal([Choices.SeedOf(4242, 1), Choices.SeedOf(4242, 2)], sent.Skip(1).Select(q => q.Sampling.Seed!.Value).Order());
        Assert.Single(sent.Select(q => q.AffinityKey).Distinct());
        Assert.NotNull(sent[0].AffinityKey);
    }

    [Fact]
    public async Task Streamed_choices_interleave_by_index_and_each_assembles_to_its_answer()
    {
        var r = await Json.PostAsync(Server.Http, "/v1/chat/completions",
            """{"messages": [{"role": "user", "content": "abc"}], "n": 2, "stream": true, "stream_options": {"include_usage": true}}""");
        var events = Sse.Parse(await r.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1].Data);
        Assert.Single(events, e => e.Data == "[DONE]");
        var texts = new[] { new StringBuilder(), new StringBuilder() };
        var finishes = new List<int>();
        JsonElement? usage = null;
        foreach (var e in events.SkipLast(1))
        {
            var chunk = JsonDocument.Parse(e.Data).RootElement;
            if (chunk.GetProperty("usage").ValueKind == JsonValueKind.Object) usage = chunk.GetProperty("usage").Clone();
            foreach (var c in chunk.GetProperty("choices").EnumerateArray())
            {
                int i = c.GetProperty("index").GetInt32();
                if (c.GetProperty("delta").GetProperty("content").GetString() is { } t) texts[i].Append(t);
                if (c.GetProperty("finish_reason").GetString() is not null) finishes.Add(i);
            }
        }
        Assert.All(texts, t => Assert.Equal("<user>abc\n<assistant>", t.ToString()));
        Assert.Equal([0, 1], finishes.Order());
        Assert.Equal(21, usage!.Value.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(42, usage.Value.GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task A_prompt_array_gives_n_choices_per_prompt_in_order()
    {
        var r = await Post("/v1/completions", """{"prompt": ["ab", "cde"], "n": 2, "max_tokens": 10}""");
        Assert.Equal(["ab", "ab", "cde", "cde"], Texts(r));
        Assert.Equal([0, 1, 2, 3], r.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("index").GetInt32()));
        Assert.Equal(5, r.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(10, r.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Arrays_of_token_ids_are_prompts_too()
    {
        var r = await Post("/v1/completions", """{"prompt": [[104, 105], [33]], "max_tokens": 10}""");
        Assert.Equal(["hi", "!"], Texts(r));
        r = await Post("/v1/completions", """{"prompt": [104, 105], "max_tokens": 10, "echo": true}""");
        Assert.Equal(["hihi"], Texts(r));
    }

    [Fact]
    public async Task Echo_puts_the_prompt_before_the_completion_streamed_and_not()
    {
        var r = await Post("/v1/completions", """{"prompt": "Once", "max_tokens": 2, "echo": true, "n": 2}""");
        Assert.Equal(["OnceOn", "OnceOn"], Texts(r));
        var stream = await Json.PostAsync(Server.Http, "/v1/completions", """{"prompt": "Once", "max_tokens": 2, "echo": true, "stream": true}""");
        var text = new StringBuilder();
        foreach (var e in Sse.Parse(await stream.Content.ReadAsStringAsync()).SkipLast(1))
            foreach (var c in JsonDocument.Parse(e.Data).RootElement.GetProperty("choices").EnumerateArray())
                text.Append(c.GetProperty("text").GetString());
        Assert.Equal("OnceOn", text.ToString());
    }

    [Theory]
    [InlineData("/v1/completions", """{"prompt": "a", "echo": true, "logprobs": 1}""", "echo")]
    [InlineData("/v1/completions", """{"prompt": ["a", "b", "c"], "n": 16}""", "n")]
    [InlineData("/v1/completions", """{"prompt": "a", "n": 0}""", "n")]
    [InlineData("/v1/completions", """{"prompt": ["a", 1]}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt": [[1], [300]]}""", "prompt[1]")]
    [InlineData("/v1/completions", """{"prompt": ["a", ""]}""", "prompt[1]")]
    [InlineData("/v1/completions", """{"prompt": ["a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a"]}""", "prompt")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "a"}], "logit_bias": {"x": 1}}""", "logit_bias")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "a"}], "logit_bias": {"97": 101}}""", "logit_bias")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "a"}], "logit_bias": {"257": 1}}""", "logit_bias")]
    [InlineData("/v1/completions", """{"prompt": "a", "logit_bias": {"-1": 1}}""", "logit_bias")]
    [InlineData("/v1/completions", """{"prompt": "a", "logit_bias": [1]}""", "logit_bias")]
    [InlineData("/v1/completions", """{"prompt": "a", "logit_bias": {"97": "high"}}""", "logit_bias")]
    public async Task Bad_choices_prompts_and_biases_are_400s_naming_the_field(string path, string body, string field)
    {
        var error = (await Post(path, body, HttpStatusCode.BadRequest)).GetProperty("error");
        Assert.Equal(field, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task Logit_bias_reaches_the_query_as_token_ids_and_numbers()
    {
        await Post("/v1/chat/completions", """{"messages": [{"role": "user", "content": "a"}], "logit_bias": {"97": -100, "98": 5.5}, "seed": 31337}""");
        var bias = Server.Fake.Requests.Last(q => q.Sampling.Seed == 31337).Sampling.LogitBias!;
        Assert.Equal(-100f, bias[97]);
        Assert.Equal(5.5f, bias[98]);
        await Post("/query", """{"prompt": "a", "logit_bias": {"10": 1}, "seed": 31338}""");
        Assert.Equal(1f, Server.Fake.Requests.Last(q => q.Sampling.Seed == 31338).Sampling.LogitBias![10]);
    }

    [Fact]
    public async Task A_full_queue_refuses_a_request_of_several_choices_with_429_and_leaves_none_running()
    {
        await using var server = await ApiServer.StartAsync(new FakeQueryClient { MaxInFlight = 1, MaxQueue = 0 });
        var r = await Json.PostAsync(server.Http, "/v1/completions", """{"prompt": "a", "n": 2}""");
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        var s = await Json.PostAsync(server.Http, "/v1/chat/completions", """{"messages": [{"role": "user", "content": "a"}], "n": 2, "stream": true}""");
        Assert.Equal(HttpStatusCode.TooManyRequests, s.StatusCode);
        await Eventually.Until(() => server.Fake.Active == 0, TimeSpan.FromSeconds(10), "the admitted choice to be cancelled");
    }
}
