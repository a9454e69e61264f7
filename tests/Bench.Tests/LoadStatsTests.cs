using System.Text.Json.Nodes;
using ActorQuery.Bench.Load;

namespace ActorQuery.Bench.Tests;

/// <summary>The figures the load generator reports, computed from hand-made measurements.</summary>
public sealed class LoadStatsTests
{
    [Fact]
    public void Percentiles_interpolate_between_closest_ranks_like_numpy()
    {
        double[] values = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];                 // order must not matter
        Assert.Equal(5.5, LatencyStats.Percentile(values, 50), 9);          // numpy.percentile(range(1, 11), 50)
        Assert.Equal(9.91, LatencyStats.Percentile(values, 99), 9);         // numpy.percentile(range(1, 11), 99)
        Assert.Equal(1, LatencyStats.Percentile(values, 0));
        Assert.Equal(10, LatencyStats.Percentile(values, 100));
        Assert.Equal(42, LatencyStats.Percentile([42.0], 99));
        Assert.True(double.IsNaN(LatencyStats.Percentile(Array.Empty<double>(), 50)));
        Assert.Throws<ArgumentOutOfRangeException>(() => LatencyStats.Percentile(values, 101));
    }

    [Fact]
    public void Inter_token_latencies_are_the_gaps_between_chunks_after_the_first()
    {
        var gaps = LatencyStats.InterTokenGaps([0.5, 0.6, 0.8, 1.1]).ToList();
        Assert.Equal(3, gaps.Count);
        Assert.Equal([0.1, 0.2, 0.3], gaps.Select(g => Math.Round(g, 9)));
        Assert.Empty(LatencyStats.InterTokenGaps([0.5]));
        Assert.Throws<ArgumentException>(() => LatencyStats.InterTokenGaps([0.5, 0.4]).ToList());
    }

    [Fact]
    public void A_level_counts_throughput_and_latency_from_answered_requests_only()
    {
        RequestResult[] results =
        [
            new(RequestOutcome.Answered, 200, [0.100, 0.150, 0.200, 0.250], 4, 0.25, null),
            new(RequestOutcome.Answered, 200, [0.300, 0.400, 0.500, 0.600], 4, 0.60, null),
            new(RequestOutcome.Refused, 429, [], 0, 0.01, "queue full"),
            new(RequestOutcome.CancelledByClient, 200, [0.2], 1, 0.2, null),
        ];
        var level = LevelSummary.Of(2, results, wallSeconds: 2.0);
        Assert.Equal((4, 2, 2, 8L), (level.Requests, level.Answered, level.Errors, level.OutputTokens));
        Assert.Equal(4.0, level.OutputTokensPerSecond, 9);
        Assert.Equal(1.0, level.RequestsPerSecond, 9);
        Assert.Equal(200, level.TtftP50Ms, 6);                              // 100 and 300 ms
        Assert.Equal(75, level.ItlP50Ms, 6);                                // gaps 50, 50, 50, 100, 100, 100 ms
        Assert.Equal(100, level.ItlP99Ms, 6);
        Assert.StartsWith("Refused 429", level.FirstError);
    }

    [Fact]
    public void The_soak_mix_is_reproducible_and_really_mixed()
    {
        var a = SoakMix.Create(2000, 64, 0.1, seed: 7);
        var b = SoakMix.Create(2000, 64, 0.1, seed: 7);
        Assert.Equal(a.Select(Describe), b.Select(Describe));
        Assert.InRange(a.Count(r => r.DisconnectAfterChunks is not null || r.DisconnectAfter is not null), 140, 260);
        Assert.Equal(1, a.Min(r => r.MaxTokens));
        Assert.Equal(64, a.Max(r => r.MaxTokens));
        Assert.Contains(a, r => r.Endpoint == LoadEndpoint.Native && r.Stream);
        Assert.Contains(a, r => r.Endpoint == LoadEndpoint.Completions && !r.Stream);
        Assert.Contains(a, r => r.Temperature == 0);
        var lengths = a.Select(r => r.Prompt.GetValue<string>().Length).ToList();
        Assert.True(lengths.Max() > 5 * lengths.Min());
        static string Describe(LoadRequest r) => (r with { Prompt = JsonValue.Create(r.Prompt.ToJsonString()) }).ToString();
    }

    [Fact]
    public async Task A_request_to_no_server_is_unanswered_with_the_reason_not_an_exception()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();                                                    // a port where nobody listens now
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var result = await new CompletionClient(http).SendAsync(new LoadRequest(JsonValue.Create("hi"), 4));
        Assert.Equal(RequestOutcome.Unanswered, result.Outcome);
        Assert.Contains("HttpRequestException", result.Error);
    }
}
