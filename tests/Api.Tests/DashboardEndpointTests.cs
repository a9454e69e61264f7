using System.Net;
using System.Text;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

/// <summary>GET /ui and GET /events on real Kestrel over the fake router, and alerts end to end (metric, timeline, webhook).</summary>
public sealed class DashboardEndpointTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static Task<ApiServer> Start(FakeQueryClient? fake = null, Uri? webhook = null) => ApiServer.StartAsync(fake, o =>
    {
        o.AlertPollInterval = TimeSpan.FromMilliseconds(100);
        o.EventsInterval = TimeSpan.FromMilliseconds(300);
        o.AlertWebhook = webhook;
        o.AlertWebhookLimits = new() { InitialBackoff = TimeSpan.FromMilliseconds(100) };
    });

    [Fact]
    public async Task The_dashboard_page_and_its_files_come_from_the_server_itself()
    {
        await using var server = await Start();
        var page = await server.Http.GetAsync("/ui");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        string html = await page.Content.ReadAsStringAsync();
        Assert.Contains("<canvas id=\"chart-tps\"", html);
        Assert.Contains("id=\"memory-bar\"", html);
        Assert.Contains("id=\"pg-form\"", html);
        Assert.DoesNotContain("https://", html); // nothing from a CDN: it works offline
        Assert.Equal(html, await server.Http.GetStringAsync("/ui/"));

        var script = await server.Http.GetAsync("/ui/dashboard.js");
        Assert.Equal("text/javascript", script.Content.Headers.ContentType?.MediaType);
        string js = await script.Content.ReadAsStringAsync();
        Assert.Contains("new EventSource(\"/events\"", js); // with ?access_token= when keys are on
        Assert.Contains("/v1/chat/completions", js);
        Assert.Equal("text/css", (await server.Http.GetAsync("/ui/dashboard.css")).Content.Headers.ContentType?.MediaType);

        var missing = await server.Http.GetAsync("/ui/secrets.txt");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("/ui/secrets.txt does not exist", await missing.Content.ReadAsStringAsync());

        var index = await Json.ReadAsync(await server.Http.GetAsync("/"));
        Assert.True(index.GetProperty("endpoints").TryGetProperty("GET /ui", out _));
        Assert.True(index.GetProperty("endpoints").TryGetProperty("GET /events", out _));
    }

    [Fact]
    public async Task Events_start_with_the_history_then_send_the_state_with_workers_memory_and_the_last_second()
    {
        await using var server = await Start();
        // Some tokens first, so that the charts' ring has a second with something in it.
        var answer = await server.Http.PostAsync("/v1/chat/completions", new StringContent(
            """{"messages":[{"role":"user","content":"hello there"}]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);

        await using var events = await SseStream.OpenAsync(server.Http, "/events");
        Assert.Equal("text/event-stream", events.Response.Content.Headers.ContentType?.MediaType);
        var (name, init) = await events.NextAsync(Wait);
        Assert.Equal("init", name);
        Assert.Equal(ApiServer.ModelName, init.GetProperty("model").GetString());
        Assert.Equal(599, init.GetProperty("series").GetArrayLength());

        var state = await events.NextMatchingAsync("state", _ => true, Wait, "at all");
        Assert.Equal("fake-node", state.GetProperty("node").GetString());
        Assert.Equal("ok", state.GetProperty("status").GetString());
        var worker = state.GetProperty("workers")[0];
        Assert.Equal(("worker-0", "ready"), (worker.GetProperty("worker").GetString(), worker.GetProperty("state").GetString()));
        Assert.Equal(Environment.ProcessId, worker.GetProperty("pid").GetInt32());
        Assert.Equal(2, worker.GetProperty("restarts").GetInt32());
        var memory = state.GetProperty("memory");
        Assert.Equal(300_000, memory.GetProperty("plan").GetProperty("weights_bytes").GetInt64());
        Assert.Equal(8_190_000, memory.GetProperty("watchdog").GetProperty("pause_at_bytes").GetInt64());
        Assert.Equal(10_000_000, memory.GetProperty("limit").GetProperty("bytes").GetInt64());

        // The tokens streamed above are in the charts' ring once their second is whole.
        await Eventually.Until(async () =>
        {
            await using var again = await SseStream.OpenAsync(server.Http, "/events");
            var series = (await again.NextAsync(Wait)).Data.GetProperty("series").EnumerateArray().TakeLast(5).ToList();
            return series.Any(s => s.GetProperty("tokens").GetInt64() > 0 && s.GetProperty("ttft_ms").ValueKind == JsonValueKind.Number);
        }, Wait, "a recent second with tokens and a time to first token in the charts' ring", interval: TimeSpan.FromMilliseconds(200));
    }

    [Theory]
    [InlineData("interval_ms=5", "must be in [250, 10000], got 5")]
    [InlineData("interval_ms=soon", "must be an integer number of milliseconds")]
    public async Task A_bad_interval_is_a_400_naming_the_parameter(string query, string reason)
    {
        await using var server = await Start();
        var r = await server.Http.GetAsync($"/events?{query}");
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var body = await r.Content.ReadAsStringAsync();
        Assert.Contains("interval_ms", body);
        Assert.Contains(reason, body);
    }

    [Fact]
    public async Task A_forced_pause_is_an_alert_on_the_timeline_in_the_metric_and_at_the_webhook_once_then_resolved_once()
    {
        using var receiver = new WebhookReceiver();
        var fake = new FakeQueryClient();
        await using var server = await Start(fake, receiver.Url);
        await using var events = await SseStream.OpenAsync(server.Http, "/events?interval_ms=250");
        await events.NextAsync(Wait); // init

        fake.PauseReason = "memory 8.3 MB is above 8.19 MB";
        fake.Paused = true;
        var fired = await events.NextMatchingAsync("timeline", e => e.GetProperty("kind").GetString() == "admission_paused", Wait, "for the pause");
        Assert.Equal("firing", fired.GetProperty("alert").GetString());
        Assert.Equal("critical", fired.GetProperty("severity").GetString());
        Assert.Contains("8.3 MB is above 8.19 MB", fired.GetProperty("message").GetString());
        var state = await events.NextMatchingAsync("state", s => s.GetProperty("paused").GetBoolean(), Wait, "paused");
        Assert.Contains(state.GetProperty("alerts").EnumerateArray(), a => a.GetProperty("kind").GetString() == "admission_paused");

        await Task.Delay(500); // several evaluations while it holds: still one alert
        fake.Paused = false;
        var resolved = await events.NextMatchingAsync("timeline", e => e.GetProperty("kind").GetString() == "admission_paused", Wait, "for the resume");
        Assert.Equal("resolved", resolved.GetProperty("alert").GetString());

        string metrics = await server.Http.GetStringAsync("/metrics");
        Assert.Contains("actorquery_alerts_total{kind=\"admission_paused\"} 1", metrics);
        Assert.Contains("actorquery_alerts_total{kind=\"node_unreachable\"} 0", metrics);

        await Eventually.Until(() => receiver.Requests.Count(r => r.Body.GetProperty("kind").GetString() == "admission_paused") == 2, Wait,
            "the webhook to get the pause and its resolution");
        await Task.Delay(500);
        var posted = receiver.Requests.Where(r => r.Body.GetProperty("kind").GetString() == "admission_paused")
            .Select(r => r.Body.GetProperty("status").GetString()!).ToArray();
        Assert.Equal(new[] { "firing", "resolved" }, posted);
        Assert.Equal("fake-node", receiver.Requests.First(r => r.Body.GetProperty("kind").GetString() == "admission_paused").Body.GetProperty("node").GetString());
    }
}
