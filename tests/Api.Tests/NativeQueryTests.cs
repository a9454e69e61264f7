using System.Net;
using System.Text.Json;
using ActorQuery.Actors;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

public sealed class NativeQueryTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApiServer Server => shared.Server;

    [Fact]
    public async Task Query_with_a_prompt_answers_text_finish_reason_usage_and_where_it_ran()
    {
        var r = await Json.PostAsync(Server.Http, "/query", """{"prompt": "hello world", "max_new_tokens": 5}""");
        var body = await Json.ReadAsync(r);

        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("hello", body.GetProperty("text").GetString()); // the fake echoes the prompt
        Assert.Equal("length", body.GetProperty("finish_reason").GetString());
        Assert.Equal(11, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(5, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(16, body.GetProperty("usage").GetProperty("total_tokens").GetInt32());
        Assert.False(body.GetProperty("cached").GetBoolean());
        Assert.True(body.GetProperty("latency_ms").GetInt64() >= 0);
        Assert.Equal(ApiServer.ModelName, body.GetProperty("model").GetString());
        Assert.Equal("fake-node/worker-0", body.GetProperty("node").GetString());
        string id = body.GetProperty("id").GetString()!;
        Assert.Equal(id, r.Headers.GetValues("X-Request-Id").Single());
    }

    [Fact]
    public async Task A_callers_request_id_is_echoed_and_never_the_querys_identity_so_a_reused_one_collides_with_nothing()
    {
        HttpRequestMessage Request() => new(HttpMethod.Post, "/query") { Content = Json.Body("""{"prompt": "hi"}"""), Headers = { { "X-Request-Id", "my-trace-42" } } };

        var replies = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Server.Http.SendAsync(Request())));

        var ids = new List<string>();
        foreach (var r in replies)
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("my-trace-42", r.Headers.GetValues("X-Request-Id").Single());
            var body = await Json.ReadAsync(r);
            Assert.Equal("hi", body.GetProperty("text").GetString());
            ids.Add(body.GetProperty("id").GetString()!);
        }
        Assert.All(ids, id => Assert.StartsWith("req-", id));
        Assert.Equal(3, ids.Distinct().Count());
        Assert.DoesNotContain(Server.Fake.Requests, q => q.QueryId == "my-trace-42");
    }

    [Fact]
    public async Task Query_with_messages_renders_the_chat_template_before_tokenising()
    {
        var r = await Json.PostAsync(Server.Http, "/query",
            """{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], "max_new_tokens": 100}""");
        var body = await Json.ReadAsync(r);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("<system>be brief\n<user>hi\n<assistant>", body.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Query_passes_every_sampling_field_to_the_router()
    {
        var r = await Json.PostAsync(Server.Http, "/query", """
            {"prompt": "abc #sampling", "max_new_tokens": 7, "temperature": 0.8, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
             "repetition_penalty": 1.1, "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 1234, "stop": ["xyz", "\n\n"],
             "timeout_ms": 2500, "ignore_eos": true, "min_tokens": 3, "an_unknown_field": {"is": "ignored"}}
            """);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var q = Server.Fake.Requests.Last(x => x.PromptTokenIds.Count == "abc #sampling".Length);
        var s = q.Sampling;
        Assert.Equal((7, 0.8f, 0.9f, 40, 0.05f, 1.1f, 0.5f, -0.5f, 1234L, true, 3),
            (s.MaxNewTokens, s.Temperature, s.TopP, s.TopK, s.MinP, s.RepetitionPenalty, s.PresencePenalty, s.FrequencyPenalty, s.Seed,
                s.IgnoreEos, s.MinNewTokens));
        Assert.Equal(["xyz", "\n\n"], q.StopStrings);
        Assert.Equal(TimeSpan.FromMilliseconds(2500), q.Timeout);
    }

    [Fact]
    public async Task Query_without_max_new_tokens_uses_the_default_and_greedy_sampling()
    {
        var r = await Json.PostAsync(Server.Http, "/query", """{"prompt": "defaults please"}""");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var q = Server.Fake.Requests.Last(x => x.PromptTokenIds.Count == "defaults please".Length);
        Assert.Equal(64, q.Sampling.MaxNewTokens);
        Assert.Equal(0f, q.Sampling.Temperature);
    }

    [Fact]
    public async Task Streamed_query_sends_text_chunks_then_a_done_event_with_usage()
    {
        var r = await Json.PostAsync(Server.Http, "/query", """{"prompt": "stream me", "stream": true}""");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("text/event-stream", Json.ContentType(r));
        var events = Sse.Parse(await r.Content.ReadAsStringAsync());

        var chunks = events.Where(e => e.Event == "chunk").ToList();
        Assert.Equal(9, chunks.Count);
        Assert.Equal("stream me", string.Concat(chunks.Select(c => JsonDocument.Parse(c.Data).RootElement.GetProperty("text").GetString())));
        var done = events.Last();
        Assert.Equal("done", done.Event);
        var final = JsonDocument.Parse(done.Data).RootElement;
        Assert.Equal(9, final.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal("stop", final.GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData("#refuse:QueueFull", 429, "queue_full", true)]
    [InlineData("#refuse:NoModelReady", 503, "no_model_ready", false)]
    [InlineData("#refuse:MemoryPressure", 503, "memory_pressure", true)]
    [InlineData("#refuse:ShuttingDown", 503, "shutting_down", false)]
    [InlineData("#refuse:TooLarge", 413, "context_length_exceeded", false)]
    [InlineData("#timeout", 504, "deadline_exceeded", false)]
    [InlineData("#fail", 500, "model_failed", false)]
    public async Task Router_outcomes_map_to_http_statuses_as_problem_json(string marker, int status, string code, bool retryAfter)
    {
        var r = await Json.PostAsync(Server.Http, "/query", $$"""{"prompt": "x {{marker}}"}""");
        Assert.Equal(status, (int)r.StatusCode);
        Assert.Equal("application/problem+json", Json.ContentType(r));
        var body = await Json.ReadAsync(r);
        Assert.Equal(status, body.GetProperty("status").GetInt32());
        Assert.Equal(code, body.GetProperty("code").GetString());
        Assert.Equal(r.Headers.GetValues("X-Request-Id").Single(), body.GetProperty("request_id").GetString());
        Assert.Equal(retryAfter, r.Headers.RetryAfter is not null);
        if (retryAfter) Assert.Equal(TimeSpan.FromSeconds(2), r.Headers.RetryAfter!.Delta);
        if (marker == "#fail") Assert.Contains("out of memory after the retry", body.GetProperty("detail").GetString());
        if (marker == "#refuse:TooLarge") Assert.Equal("max_new_tokens", body.GetProperty("field").GetString());
    }

    [Fact]
    public async Task Streamed_refusal_gets_its_own_status_not_a_200_stream()
    {
        var r = await Json.PostAsync(Server.Http, "/query", """{"prompt": "x #refuse:QueueFull", "stream": true}""");
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        Assert.NotNull(r.Headers.RetryAfter);
    }

    [Fact]
    public async Task Failure_after_the_first_token_ends_the_stream_with_an_error_event()
    {
        var r = await Json.PostAsync(Server.Http, "/query", """{"prompt": "x #fail-mid", "stream": true}""");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var events = Sse.Parse(await r.Content.ReadAsStringAsync());
        Assert.Equal("chunk", events[0].Event);
        Assert.Equal("error", events[^1].Event);
        var error = JsonDocument.Parse(events[^1].Data).RootElement;
        Assert.Equal(500, error.GetProperty("status").GetInt32());
        Assert.Contains("worker died twice", error.GetProperty("detail").GetString());
    }
}
