using ActorQuery.Api.Dashboard;
using ActorQuery.Api.Tests.Fakes;
using Microsoft.Extensions.Logging.Abstractions;

namespace ActorQuery.Api.Tests;

/// <summary>The alert webhook against a real loopback HTTP listener: the JSON it posts, retries with backoff, the bounded queue.</summary>
public sealed class AlertWebhookTests
{
    private static Alert Alert(string kind, string status = "firing") => new(kind, status, "critical", "node-a", null, $"{kind} on node-a",
        new Dictionary<string, object?> { ["resident_bytes"] = 8_300_000L }, DateTimeOffset.Parse("2026-12-07T10:00:00Z"));

    private static readonly AlertWebhookOptions Fast = new()
    {
        MaxAttempts = 4, InitialBackoff = TimeSpan.FromMilliseconds(150), MaxBackoff = TimeSpan.FromMilliseconds(400), Timeout = TimeSpan.FromSeconds(5),
    };

    [Fact]
    public async Task Posts_the_alert_as_json_with_kind_severity_node_worker_message_values_and_time()
    {
        using var receiver = new WebhookReceiver();
        await using var webhook = new AlertWebhook(receiver.Url, Fast, NullLogger.Instance);
        Assert.True(webhook.Enqueue(Alert("admission_paused")));
        await Eventually.Until(() => webhook.Sent == 1, TimeSpan.FromSeconds(10), "the alert to be delivered");

        var received = Assert.Single(receiver.Requests);
        Assert.True(received.ContentLength > 0, "the alert was sent chunked, without a Content-Length (small receivers cannot read it)");
        var body = received.Body;
        Assert.Equal("admission_paused", body.GetProperty("kind").GetString());
        Assert.Equal("firing", body.GetProperty("status").GetString());
        Assert.Equal("critical", body.GetProperty("severity").GetString());
        Assert.Equal("node-a", body.GetProperty("node").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, body.GetProperty("worker").ValueKind);
        Assert.Equal("admission_paused on node-a", body.GetProperty("message").GetString());
        Assert.Equal(8_300_000, body.GetProperty("values").GetProperty("resident_bytes").GetInt64());
        Assert.Equal(DateTimeOffset.Parse("2026-12-07T10:00:00Z"), body.GetProperty("time").GetDateTimeOffset());
    }

    [Fact]
    public async Task A_failing_receiver_gets_retries_with_growing_waits_until_it_answers_2xx()
    {
        using var receiver = new WebhookReceiver { Answer = n => n <= 3 ? 503 : 200 };
        await using var webhook = new AlertWebhook(receiver.Url, Fast, NullLogger.Instance);
        webhook.Enqueue(Alert("worker_failed"));
        await Eventually.Until(() => webhook.Sent == 1, TimeSpan.FromSeconds(10), "the alert to be delivered on the fourth try",
            () => $"{receiver.Requests.Count} requests");

        var tries = receiver.Requests.ToArray();
        Assert.Equal([503, 503, 503, 200], tries.Select(t => t.Answered).ToArray());
        Assert.All(tries, t => Assert.Equal("worker_failed", t.Body.GetProperty("kind").GetString()));
        var waits = tries.Zip(tries.Skip(1), (a, b) => b.At - a.At).ToArray();
        // 150 ms, then 300 ms, then 400 ms (doubled, capped).
        Assert.True(waits[0] >= TimeSpan.FromMilliseconds(140), $"first wait {waits[0].TotalMilliseconds} ms");
        Assert.True(waits[1] >= TimeSpan.FromMilliseconds(290), $"second wait {waits[1].TotalMilliseconds} ms");
        Assert.True(waits[2] >= TimeSpan.FromMilliseconds(390), $"third wait {waits[2].TotalMilliseconds} ms");
        Assert.True(waits[2] < TimeSpan.FromMilliseconds(1500), $"third wait {waits[2].TotalMilliseconds} ms is not capped");
        Assert.Equal(0, webhook.Failed);
    }

    [Fact]
    public async Task Gives_up_after_the_last_try_and_goes_on_with_the_next_alert()
    {
        using var receiver = new WebhookReceiver { Answer = n => n <= 4 ? 500 : 200 };
        await using var webhook = new AlertWebhook(receiver.Url, Fast, NullLogger.Instance);
        webhook.Enqueue(Alert("worker_failed"));
        webhook.Enqueue(Alert("worker_failed", "resolved"));
        await Eventually.Until(() => webhook.Sent == 1, TimeSpan.FromSeconds(10), "the second alert to be delivered");
        Assert.Equal(1, webhook.Failed);
        var kinds = receiver.Requests.Select(r => r.Body.GetProperty("status").GetString()!).ToArray();
        Assert.Equal(new[] { "firing", "firing", "firing", "firing", "resolved" }, kinds);
    }

    [Fact]
    public async Task The_queue_is_bounded_so_a_stuck_receiver_drops_new_alerts_instead_of_growing()
    {
        using var receiver = new WebhookReceiver { Hold = true };
        await using var webhook = new AlertWebhook(receiver.Url, Fast with { QueueCapacity = 2 }, NullLogger.Instance);
        Assert.True(webhook.Enqueue(Alert("a1")));
        await Eventually.Until(() => receiver.Requests.Count == 1, TimeSpan.FromSeconds(10), "the first alert to reach the stuck receiver");

        bool[] accepted = new[] { "a2", "a3", "a4", "a5" }.Select(k => webhook.Enqueue(Alert(k))).ToArray();
        Assert.Equal([true, true, false, false], accepted);
        Assert.Equal(2, webhook.Dropped);

        receiver.Hold = false;
        receiver.Release();
        await Eventually.Until(() => webhook.Sent == 3, TimeSpan.FromSeconds(10), "the queued alerts to be delivered");
        Assert.Equal(new[] { "a1", "a2", "a3" }, receiver.Requests.Select(r => r.Body.GetProperty("kind").GetString()!).ToArray());
    }
}
