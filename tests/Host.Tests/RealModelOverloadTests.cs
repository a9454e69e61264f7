using System.Net;
using System.Text;
using System.Text.Json;

namespace ActorQuery.Host.Tests;

/// <summary>The shipped server under 3× more concurrent requests than it admits (in flight + queue), and under an
/// out-of-memory error in the middle of an answer, which the client sees as a pause.</summary>
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

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>The text of a native stream's chunks, and its event names in order.</summary>
    private static (string Text, List<string> Events) ReadStream(string sse)
    {
        var text = new StringBuilder();
        var events = new List<string>();
        string? current = null;
        foreach (var line in sse.Split('\n'))
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) events.Add(current = line["event: ".Length..].Trim());
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && current == "chunk")
                text.Append(JsonDocument.Parse(line["data: ".Length..]).RootElement.GetProperty("text").GetString());
        }
        return (text.ToString(), events);
    }

    [Fact]
    public async Task An_out_of_memory_in_the_middle_of_an_answer_is_a_pause_with_the_same_text_streamed_or_not()
    {
        // Each query generates exactly 16 tokens (ignore_eos), one per engine step, the prompt's step giving the first.
        // Steps 1-16: the undisturbed greedy stream; 17-33: its twin, out of memory at step 22 after 5 tokens;
        // 34-49: an undisturbed seeded stream; 50-66: its twin, out of memory at step 53 after 3 tokens;
        // 67-83: a non-streamed greedy query, out of memory at step 74 after 7 tokens.
        await using var server = await DefaultModelServer.StartAsync([], new()
        {
            ["ActorQuery:Faults:OomAtSteps:0"] = "22",
            ["ActorQuery:Faults:OomAtSteps:1"] = "53",
            ["ActorQuery:Faults:OomAtSteps:2"] = "74",
            ["ActorQuery:Workers:BackoffMin"] = "00:00:00.050",
        });
        var http = server.Http;
        const string greedy = """{"prompt": "What is 12 times 11?", "max_new_tokens": 16, "ignore_eos": true, "stream": true}""";
        const string seeded = """{"prompt": "Tell me a story.", "max_new_tokens": 16, "ignore_eos": true, "temperature": 0.8, "seed": 7, "stream": true}""";
        async Task<(string Text, List<string> Events)> Stream(string json) =>
            ReadStream(await (await http.PostAsync("/query", Json(json))).Content.ReadAsStringAsync());

        var undisturbed = await Stream(greedy);
        var resumed = await Stream(greedy);
        var seededUndisturbed = await Stream(seeded);
        var seededResumed = await Stream(seeded);
        var plain = await http.PostAsync("/query", Json(greedy.Replace("\"stream\": true", "\"stream\": false")));

        Assert.Equal(["chunk", "done"], undisturbed.Events.Distinct());
        Assert.Equal(["chunk", "done"], resumed.Events.Distinct());   // no error event
        Assert.Equal(undisturbed.Text, resumed.Text);
        Assert.Equal(["chunk", "done"], seededResumed.Events.Distinct());
        Assert.Equal(seededUndisturbed.Text, seededResumed.Text);
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Equal(undisturbed.Text, JsonDocument.Parse(await plain.Content.ReadAsStringAsync()).RootElement.GetProperty("text").GetString());

        var metrics = await http.GetStringAsync("/metrics");
        Assert.Contains("actorquery_resumes_total 3", metrics);
        Assert.Contains("actorquery_oom_total 3", metrics);
    }
}
