using System.Net;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

public sealed class ConcurrencyTests
{
    [Theory]
    [InlineData("/query", """{"prompt": "x #hang", "stream": true}""")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "x #hang"}], "stream": true}""")]
    [InlineData("/v1/completions", """{"prompt": "x #hang", "stream": true}""")]
    public async Task Client_disconnect_mid_stream_cancels_the_query_and_frees_its_slot(string path, string body)
    {
        await using var server = await ApiServer.StartAsync();
        using (var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json.Body(body) })
        {
            var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var stream = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[256];
            int read = await stream.ReadAsync(buffer); // the first chunk arrived: the query is mid-stream
            Assert.True(read > 0);
            Assert.Equal(1, server.Fake.Active);
            response.Dispose(); // the client goes away
        }

        await server.Fake.CancellationSeen.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(1, server.Fake.CancellationsSeen);
        Assert.Equal(0, server.Fake.Active);
        var next = await Json.PostAsync(server.Http, "/query", """{"prompt": "next"}""");
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task Client_disconnect_before_the_answer_cancels_a_non_streamed_query()
    {
        await using var server = await ApiServer.StartAsync();
        using var cts = new CancellationTokenSource();
        var call = server.Http.PostAsync("/query", Json.Body("""{"prompt": "x #hang"}"""), cts.Token);
        await Eventually.Until(() => server.Fake.Active > 0, TimeSpan.FromSeconds(10), "the query to reach the fake router");
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await server.Fake.CancellationSeen.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(0, server.Fake.Active);
    }

    /// <summary>
    /// The fake router enforces in-flight + queue limits the way the real QueryRouter does (its own admission is
    /// tested in the actors' tests); here what matters is that the HTTP side turns refusals into 429 + Retry-After
    /// while the admitted requests complete.
    /// </summary>
    [Fact]
    public async Task Overload_three_times_capacity_gets_429_with_retry_after_and_the_admitted_complete()
    {
        const int maxInFlight = 2, maxQueue = 2, capacity = maxInFlight + maxQueue, total = 3 * capacity;
        var fake = new FakeQueryClient { MaxInFlight = maxInFlight, MaxQueue = maxQueue, ReleaseAfterSubmissions = total };
        await using var server = await ApiServer.StartAsync(fake);

        var responses = await Task.WhenAll(Enumerable.Range(0, total).Select(i =>
            Json.PostAsync(server.Http, "/v1/completions", $$"""{"prompt": "request {{i}}", "max_tokens": 7}""")));

        var ok = responses.Where(r => r.StatusCode == HttpStatusCode.OK).ToList();
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(capacity, ok.Count);
        Assert.Equal(total - capacity, refused.Count);
        Assert.All(refused, r => Assert.Equal(TimeSpan.FromSeconds(2), r.Headers.RetryAfter?.Delta));
        foreach (var r in refused)
            Assert.Equal("rate_limit_error", (await Json.ReadAsync(r)).GetProperty("error").GetProperty("type").GetString());
        foreach (var r in ok)
            Assert.Equal("request", (await Json.ReadAsync(r)).GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "x #hang"}], "stream": true}""")]
    [InlineData("/query", """{"prompt": "x #hang", "stream": true}""")]
    public async Task A_stream_still_running_at_the_drain_timeout_ends_with_a_shutting_down_error_and_its_end_not_a_cut(string path, string body)
    {
        await using var server = await ApiServer.StartAsync(configure: o => o.DrainTimeout = TimeSpan.FromMilliseconds(500));
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        using var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var reading = response.Content.ReadAsStringAsync();
        await Eventually.Until(() => server.Fake.Active > 0, TimeSpan.FromSeconds(10), "the stream to reach the fake router");

        await server.App.StopAsync(); // what SIGTERM does: drain, then the timeout

        Assert.True(server.Fake.DrainingStarted, "the router was not told to drain");
        var events = Sse.Parse(await reading.WaitAsync(TimeSpan.FromSeconds(10)));
        var error = events.Single(e => e.Data.Contains("shutting down"));
        Assert.Contains("drain timeout of 0.5 s passed", error.Data);
        Assert.Contains("shutting_down", error.Data);
        if (path.StartsWith("/v1/")) Assert.Equal("[DONE]", events[^1].Data);
        else Assert.Equal("error", events[^1].Event);
    }

    [Fact]
    public async Task Shutdown_turns_readiness_and_new_queries_to_503_while_running_ones_finish()
    {
        await using var server = await ApiServer.StartAsync(configure: o => o.DrainTimeout = TimeSpan.FromSeconds(20));
        var running = Json.PostAsync(server.Http, "/query", """{"prompt": "finish me #hold", "max_new_tokens": 6}""");
        await Eventually.Until(() => server.Fake.Active > 0, TimeSpan.FromSeconds(10), "the query to reach the fake router");

        var stopping = server.App.StopAsync(); // what SIGTERM does
        var gate = server.App.Services.GetService(typeof(Shutdown.DrainGate)) as Shutdown.DrainGate;
        await Eventually.Until(() => gate!.IsDraining, TimeSpan.FromSeconds(10), "the API to start draining after StopAsync");

        var ready = await server.Http.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var refused = await Json.PostAsync(server.Http, "/query", """{"prompt": "too late"}""");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("shutting_down", (await Json.ReadAsync(refused)).GetProperty("code").GetString());
        Assert.False(running.IsCompleted);

        server.Fake.Release();
        var answer = await running;
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("finish", (await Json.ReadAsync(answer)).GetProperty("text").GetString());
        await stopping;
    }
}
