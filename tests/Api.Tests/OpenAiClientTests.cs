#pragma warning disable OPENAI001 // ChatCompletionOptions.Seed is marked experimental in the library
using System.ClientModel;
using System.Net;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;
using OpenAI;
using OpenAI.Chat;

namespace ActorQuery.Api.Tests;

/// <summary>The official OpenAI .NET library as the client, as a user of an OpenAI-compatible server would use it.</summary>
public sealed class OpenAiClientTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApiServer Server => shared.Server;

    private OpenAIClient Client(int retries = 3) => new(new ApiKeyCredential("not-checked"),
        new OpenAIClientOptions
        {
            Endpoint = new Uri(Server.BaseAddress, "v1"), NetworkTimeout = TimeSpan.FromSeconds(30),
            RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(retries),
        });

    [Fact]
    public async Task Chat_completion_through_the_openai_library()
    {
        var chat = Client().GetChatClient(ApiServer.ModelName);
        ChatCompletion c = await chat.CompleteChatAsync([new SystemChatMessage("sys"), new UserChatMessage("Say hi")],
            new ChatCompletionOptions { MaxOutputTokenCount = 100, Temperature = 0.5f, Seed = 7 });

        Assert.Equal("<system>sys\n<user>Say hi\n<assistant>", c.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, c.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, c.Role);
        Assert.Equal(ApiServer.ModelName, c.Model);
        Assert.Equal(c.Content[0].Text.Length, c.Usage.OutputTokenCount);
        Assert.Equal(c.Content[0].Text.Length, c.Usage.InputTokenCount);
        Assert.StartsWith("chatcmpl-", c.Id);
        var sent = Server.Fake.Requests.Last(q => q.Sampling.Seed == 7);
        Assert.Equal(0.5f, sent.Sampling.Temperature);
        Assert.Equal(100, sent.Sampling.MaxNewTokens); // max_completion_tokens
    }

    [Fact]
    public async Task Streamed_chat_completion_through_the_openai_library_with_usage()
    {
        var chat = Client().GetChatClient(ApiServer.ModelName);
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        int updates = 0;
        await foreach (var u in chat.CompleteChatStreamingAsync([new UserChatMessage("stream")],
                           new ChatCompletionOptions { MaxOutputTokenCount = 5 }))
        {
            updates++;
            foreach (var part in u.ContentUpdate) text.Append(part.Text);
            finish ??= u.FinishReason;
            usage ??= u.Usage;
        }
        Assert.Equal("<user", text.ToString());
        Assert.True(updates >= 6, $"expected one update per token, got {updates}");
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.NotNull(usage); // the library asks for stream_options.include_usage
        Assert.Equal(5, usage!.OutputTokenCount);
    }

    [Fact]
    public async Task Chat_logprobs_through_the_openai_library()
    {
        var chat = Client().GetChatClient(ApiServer.ModelName);
        ChatCompletion c = await chat.CompleteChatAsync([new UserChatMessage("lp")],
            new ChatCompletionOptions { MaxOutputTokenCount = 3, IncludeLogProbabilities = true, TopLogProbabilityCount = 2 });
        Assert.Equal(3, c.ContentTokenLogProbabilities.Count);
        Assert.Equal("<", c.ContentTokenLogProbabilities[0].Token);
        Assert.Equal(-0.5f, c.ContentTokenLogProbabilities[0].LogProbability);
        Assert.Equal(2, c.ContentTokenLogProbabilities[0].TopLogProbabilities.Count);
        Assert.Equal("a", c.ContentTokenLogProbabilities[0].TopLogProbabilities[0].Token);
    }

    [Fact]
    public async Task Models_list_through_the_openai_library()
    {
        var models = await Client().GetOpenAIModelClient().GetModelsAsync();
        var model = Assert.Single(models.Value);
        Assert.Equal(ApiServer.ModelName, model.Id);
        Assert.Equal("actorquery", model.OwnedBy);
    }

    [Fact]
    public async Task Errors_reach_the_openai_library_with_the_field_and_reason()
    {
        var chat = Client().GetChatClient(ApiServer.ModelName);
        var e = await Assert.ThrowsAsync<ClientResultException>(() =>
            chat.CompleteChatAsync([new UserChatMessage("x")], new ChatCompletionOptions { Temperature = -1f }));
        Assert.Equal(400, e.Status);
        Assert.Contains("temperature", e.Message);
        Assert.Contains(">= 0", e.Message);
    }

    [Fact]
    public async Task Queue_full_reaches_the_openai_library_as_429()
    {
        var chat = Client(retries: 0).GetChatClient(ApiServer.ModelName); // the library would retry 429 after Retry-After
        var e = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("#refuse:QueueFull")]));
        Assert.Equal(429, e.Status);
    }

    // The OpenAI .NET library (2.x) has no client for the legacy /v1/completions endpoint, so it is called with HttpClient.
    [Fact]
    public async Task Completion_in_openai_shape()
    {
        var r = await Json.PostAsync(Server.Http, "/v1/completions",
            """{"model": "byte-model", "prompt": "Once upon", "max_tokens": 4, "temperature": 0, "logprobs": 1, "unknown": 1}""");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var body = await Json.ReadAsync(r);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        Assert.StartsWith("cmpl-", body.GetProperty("id").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("Once", choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(["O", "n", "c", "e"], choice.GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()));
        Assert.Single(choice.GetProperty("logprobs").GetProperty("top_logprobs")[0].EnumerateObject());
        Assert.Equal(13, body.GetProperty("usage").GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Completion_accepts_token_ids_as_prompt()
    {
        var r = await Json.PostAsync(Server.Http, "/v1/completions", """{"prompt": [104, 105], "max_tokens": 10}""");
        var body = await Json.ReadAsync(r);
        Assert.Equal("hi", body.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Streamed_completion_ends_with_usage_then_done()
    {
        var r = await Json.PostAsync(Server.Http, "/v1/completions",
            """{"prompt": "abc", "max_tokens": 10, "stream": true, "stream_options": {"include_usage": true}}""");
        Assert.Equal("text/event-stream", Json.ContentType(r));
        var events = Sse.Parse(await r.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1].Data);
        var usage = JsonDocument.Parse(events[^2].Data).RootElement;
        Assert.Empty(usage.GetProperty("choices").EnumerateArray());
        Assert.Equal(3, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var last = JsonDocument.Parse(events[^3].Data).RootElement.GetProperty("choices")[0];
        Assert.Equal("stop", last.GetProperty("finish_reason").GetString());
        string text = string.Concat(events.SkipLast(3).Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal("abc", text);
        Assert.All(events.SkipLast(2), e => Assert.Equal(JsonValueKind.Null, JsonDocument.Parse(e.Data).RootElement.GetProperty("usage").ValueKind));
    }

    [Fact]
    public async Task Streamed_chat_without_include_usage_has_no_usage_chunk()
    {
        var r = await Json.PostAsync(Server.Http, "/v1/chat/completions",
            """{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "max_tokens": 2, "stream": true}""");
        var events = Sse.Parse(await r.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1].Data);
        var first = JsonDocument.Parse(events[0].Data).RootElement;
        Assert.Equal("chat.completion.chunk", first.GetProperty("object").GetString());
        Assert.Equal("assistant", first.GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        var last = JsonDocument.Parse(events[^2].Data).RootElement;
        Assert.Equal("length", last.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(5, events.Count); // role, 2 tokens, finish, [DONE]
    }

    [Fact]
    public async Task Too_many_choices_are_refused_clearly()
    {
        var r = await Json.PostAsync(Server.Http, "/v1/chat/completions", """{"messages": [{"role": "user", "content": "a"}], "n": 17}""");
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var error = (await Json.ReadAsync(r)).GetProperty("error");
        Assert.Equal("n", error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("[1, 16]", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Unknown_model_is_404_in_openai_shape()
    {
        var r = await Json.PostAsync(Server.Http, "/v1/chat/completions", """{"model": "gpt-9", "messages": [{"role": "user", "content": "a"}]}""");
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        var error = (await Json.ReadAsync(r)).GetProperty("error");
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Ignore_eos_and_min_tokens_are_accepted_on_openai_endpoints()
    {
        var r = await Json.PostAsync(Server.Http, "/v1/chat/completions",
            """{"messages": [{"role": "user", "content": "eos"}], "max_tokens": 9, "ignore_eos": true, "min_tokens": 4, "seed": 99}""");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var q = Server.Fake.Requests.Last(x => x.Sampling.Seed == 99);
        Assert.True(q.Sampling.IgnoreEos);
        Assert.Equal(4, q.Sampling.MinNewTokens);
    }
}
