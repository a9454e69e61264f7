using System.Net;
using System.Text;

namespace ActorQuery.Host.Tests;

/// <summary>The shipped server under 3× more concurrent requests than it admits (in flight + queue), and under an
/// out-of-memory error in the middle of an answer.</summary>
[Collection(ServeCollection.Name)]
public sealed class RealModelOverloadTests
{
    [Fact]
    public async Task The_excess_gets_429_with_retry_after_and_every_admitted_query_completes()
    {
        await using var server = await DefaultModelServer.StartAsync(["--max-in-flight", "2", "--max-queue", "2"],
            new() { ["ActorQuery:Faults:StepDelayMs"] = "100" }); // a slow model, so that requests overlap
        var http = server.Http;
        var responses = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => http.PostAsync("/query",
            new StringContent("""{"prompt": "What is 4 times 3?", "max_new_tokens": 8}""", Encoding.UTF8, "application/json"))));

        var ok = responses.Where(r => r.StatusCode == HttpStatusCode.OK).ToList();
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(12, ok.Count + refused.Count);
        Assert.InRange(ok.Count, 4, 8);                       // at least in flight + queue were admitted
        Assert.All(refused, r => Assert.True(r.Headers.RetryAfter?.Delta > TimeSpan.Zero));
        foreach (var r in ok) Assert.Contains("\"text\":\"12\"", await r.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task An_out_of_memory_after_the_first_token_is_invisible_to_a_non_streamed_client_and_ends_a_streamed_one()
    {
        // Steps 1-2 are the first query (prompt with its first token, then the end) and 3-4 its retry; 5-6 the second query.
        await using var server = await DefaultModelServer.StartAsync([], new()
        {
            ["ActorQuery:Faults:OomAtSteps:0"] = "2",
            ["ActorQuery:Faults:OomAtSteps:1"] = "6",
            ["ActorQuery:Workers:BackoffMin"] = "00:00:00.050",
        });
        var http = server.Http;
        // Non-streamed: nothing reached the client before the OOM, so the router retried it whole.
        var plain = await http.PostAsync("/query",
            new StringContent("""{"prompt": "What is 12 times 11?", "max_new_tokens": 8}""", Encoding.UTF8, "application/json"));
        var body = await plain.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Contains("\"text\":\"132\"", body);

        // Streamed: the first token was on the wire, so the query ends with the reason instead of a second answer.
        var streamed = await http.PostAsync("/query",
            new StringContent("""{"prompt": "What is 12 times 11?", "max_new_tokens": 8, "stream": true}""", Encoding.UTF8, "application/json"));
        var events = await streamed.Content.ReadAsStringAsync();
        Assert.Contains("out of memory", events);
        Assert.Contains("not retried", events);

        var health = await (await http.GetAsync("/health")).Content.ReadAsStringAsync(); // 503 while the worker reloads
        Assert.Contains("\"oom_count\":2", health);
    }
}
