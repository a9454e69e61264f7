using System.Net;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

public sealed class StatusEndpointTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApiServer Server => shared.Server;

    [Fact]
    public async Task Health_shows_each_workers_state_restarts_and_last_oom()
    {
        var r = await Server.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var body = await Json.ReadAsync(r);
        Assert.Equal("ok", body.GetProperty("status").GetString());
        var worker = body.GetProperty("workers")[0];
        Assert.Equal("ready", worker.GetProperty("state").GetString());
        Assert.Equal(2, worker.GetProperty("restarts").GetInt32());
        Assert.Equal(1, worker.GetProperty("oom_count").GetInt32());
        Assert.Equal(DateTimeOffset.Parse("2026-11-27T10:00:00Z"), worker.GetProperty("last_oom").GetDateTimeOffset());
        Assert.Equal(HttpStatusCode.OK, (await Server.Http.GetAsync("/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Server.Http.GetAsync("/health/ready")).StatusCode);
    }

    [Fact]
    public async Task Health_and_readiness_are_503_while_no_model_is_ready_but_liveness_is_200()
    {
        await using var server = await ApiServer.StartAsync(new FakeQueryClient { Ready = false });
        var health = await server.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        Assert.Equal("no_model_ready", (await Json.ReadAsync(health)).GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await server.Http.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Liveness_is_503_cannot_recover_with_the_reason_once_every_worker_failed_for_good()
    {
        var client = new FakeQueryClient { FailedWith = "a step made no progress for 120 s" };
        await using var server = await ApiServer.StartAsync(client);
        var live = await server.Http.GetAsync("/health/live");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, live.StatusCode);
        var body = await Json.ReadAsync(live);
        Assert.Equal("cannot_recover", body.GetProperty("status").GetString());
        Assert.Contains("worker-0: a step made no progress", body.GetProperty("reason").GetString());

        client.FailedWith = null; // a worker that is back (or another one) makes the node alive again
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Readiness_and_health_are_503_memory_pressure_with_the_reason_while_paused_and_200_after()
    {
        const string reason = "memory 9.1 MiB is above 8.2 MiB (plan 928 KiB + 80% of the 8.6 MiB it leaves under the physical memory 9.5 MiB)";
        await using var server = await ApiServer.StartAsync(new FakeQueryClient { Paused = true, PauseReason = reason });

        var ready = await server.Http.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var readyBody = await Json.ReadAsync(ready);
        Assert.Equal("memory_pressure", readyBody.GetProperty("status").GetString());
        Assert.Equal(reason, readyBody.GetProperty("reason").GetString());

        var health = await server.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        var healthBody = await Json.ReadAsync(health);
        Assert.Equal("memory_pressure", healthBody.GetProperty("status").GetString());
        Assert.False(healthBody.GetProperty("ready").GetBoolean());
        Assert.True(healthBody.GetProperty("paused").GetBoolean());
        Assert.Equal(reason, healthBody.GetProperty("pause_reason").GetString());
        Assert.Equal("ready", healthBody.GetProperty("workers")[0].GetProperty("state").GetString()); // the workers are fine; memory is not

        server.Fake.Paused = false; // the watchdog resumed admission
        var readyAfter = await server.Http.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, readyAfter.StatusCode);
        Assert.Equal("ready", (await Json.ReadAsync(readyAfter)).GetProperty("status").GetString());
        var healthAfter = await Json.ReadAsync(await server.Http.GetAsync("/health"));
        Assert.Equal("ok", healthAfter.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, healthAfter.GetProperty("pause_reason").ValueKind);
    }

    [Fact]
    public async Task Metrics_exposes_every_named_metric_in_prometheus_text()
    {
        await Json.PostAsync(Server.Http, "/query", """{"prompt": "count me", "max_new_tokens": 3}""");
        await Json.PostAsync(Server.Http, "/query", """{"prompt": "x #refuse:QueueFull"}""");
        var r = await Server.Http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("text/plain", Json.ContentType(r));
        string text = await r.Content.ReadAsStringAsync();
        foreach (var name in new[]
                 {
                     "actorquery_requests_total{endpoint=\"/query\",status=\"200\"}", "actorquery_refused_total{reason=\"QueueFull\"} 1",
                     "actorquery_queue_depth", "actorquery_requests_in_flight", "actorquery_time_to_first_token_seconds_bucket",
                     "actorquery_inter_token_latency_seconds_bucket", "actorquery_request_duration_seconds_bucket",
                     "actorquery_prompt_tokens_total", "actorquery_generated_tokens_total", "actorquery_model_restarts_total{reason=\"oom\"} 1",
                     "actorquery_model_restarts_total{reason=\"other\"} 1", "actorquery_oom_total 1", "actorquery_memory_bytes{kind=\"resident\"} 1000000",
                     "actorquery_cache_hits_total 5", "actorquery_cache_misses_total 7",
                 })
            Assert.Contains(name, text);
        Assert.Matches(@"actorquery_requests_total\{endpoint=""/query"",status=""429""\} [1-9]", text);
    }

    [Fact]
    public async Task Docs_page_and_openapi_document_describe_every_endpoint_with_examples()
    {
        var docs = await Server.Http.GetAsync("/docs");
        Assert.Equal(HttpStatusCode.OK, docs.StatusCode);
        Assert.Equal("text/html", Json.ContentType(docs));
        Assert.Contains("openapi/v1.json", await docs.Content.ReadAsStringAsync());

        var doc = await Json.ReadAsync(await Server.Http.GetAsync("/openapi/v1.json"));
        var paths = doc.GetProperty("paths");
        foreach (var p in new[] { "/", "/query", "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/health/live",
                     "/health/ready", "/memory", "/metrics" })
            Assert.True(paths.TryGetProperty(p, out _), $"OpenAPI document lacks {p}");
        var query = paths.GetProperty("/query").GetProperty("post");
        Assert.Equal("The capital of France is",
            query.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("example").GetProperty("prompt").GetString());
        Assert.True(query.GetProperty("responses").GetProperty("200").GetProperty("content").GetProperty("application/json").TryGetProperty("example", out _));
        var chatSchema = doc.GetProperty("components").GetProperty("schemas").GetProperty("ChatCompletionRequest").GetProperty("properties");
        Assert.True(chatSchema.TryGetProperty("max_completion_tokens", out _)); // snake_case as clients send it
    }

    [Fact]
    public async Task Index_lists_the_endpoints()
    {
        var body = await Json.ReadAsync(await Server.Http.GetAsync("/"));
        Assert.Equal(ApiServer.ModelName, body.GetProperty("model").GetString());
        var endpoints = body.GetProperty("endpoints").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Contains("POST /query", endpoints);
        Assert.Contains("GET /docs", endpoints);
    }
}
