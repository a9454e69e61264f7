using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The shipped server with its default worker process (a real child <c>actorquery serve</c> joined over loopback
/// remoting): the child is SIGKILLed while two streams run, one greedy and one sampled with a seed. Both streams end as
/// an undisturbed run ends, byte for byte, without an error event; /health counts the restart and names the signal.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class WorkerProcessTests
{
    private const int NewTokens = 120;

    private static string Request(string prompt, bool stream, double temperature) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["prompt"] = prompt, ["max_tokens"] = NewTokens, ["ignore_eos"] = true, ["temperature"] = temperature, ["seed"] = 7, ["stream"] = stream,
    });

    private static async Task<string> Complete(HttpClient http, string prompt, double temperature)
    {
        using var r = await http.PostAsync("/query", new StringContent(Request(prompt, false, temperature), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        return JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("text").GetString()!;
    }

    /// <summary>Reads a native stream to its end: the text of its chunks, its terminal event's name, and a count of chunks
    /// so far that the test can wait on.</summary>
    private sealed class Stream(HttpClient http, string prompt, double temperature)
    {
        public readonly StringBuilder Text = new();
        public int Chunks;
        public string? Last;
        public string? LastData;

        public async Task RunAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/query")
            {
                Content = new StringContent(Request(prompt, true, temperature), Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            string? ev = null;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal)) ev = line["event: ".Length..];
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    var data = line["data: ".Length..];
                    if (ev == "chunk")
                    {
                        Text.Append(JsonDocument.Parse(data).RootElement.GetProperty("text").GetString());
                        Interlocked.Increment(ref Chunks);
                    }
                    else { Last = ev; LastData = data; }
                }
            }
        }
    }

    private static async Task<JsonElement> Health(HttpClient http)
    {
        using var r = await http.GetAsync("/health");
        return JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    [Fact]
    public async Task Streams_continue_byte_identical_when_the_worker_process_is_killed_and_health_counts_the_restart()
    {
        // Each step sleeps 15 ms, so that the kill lands in the middle of the streams.
        await using var server = await DefaultModelServer.StartAsync(["--max-in-flight", "4"],
            new() { ["ActorQuery:Faults:StepDelayMs"] = "15" });
        var http = server.Http;
        const string greedyPrompt = "What is 12 + 30?", sampledPrompt = "Compute 8 - 3.";
        string greedy = await Complete(http, greedyPrompt, 0), sampled = await Complete(http, sampledPrompt, 0.8);

        var before = (await Health(http)).GetProperty("worker_processes")[0];
        Assert.Equal("ready", before.GetProperty("state").GetString());
        int pid = before.GetProperty("pid").GetInt32();
        Assert.Equal(0, before.GetProperty("restarts").GetInt32());

        var streams = new[] { new Stream(http, greedyPrompt, 0), new Stream(http, sampledPrompt, 0.8) };
        var running = streams.Select(s => s.RunAsync()).ToArray();
        await Eventually.Until(() => Task.FromResult(streams.Min(s => Volatile.Read(ref s.Chunks))), n => n >= 10,
            TimeSpan.FromSeconds(30), "both streams to have 10 chunks");
        Process.GetProcessById(pid).Kill(); // SIGKILL, as the kernel's OOM killer sends it
        await Task.WhenAll(running).WaitAsync(TimeSpan.FromSeconds(90));

        Assert.All(streams, s => Assert.Equal("done", s.Last));
        Assert.Equal(greedy, streams[0].Text.ToString());
        Assert.Equal(sampled, streams[1].Text.ToString());
        var after = (await Health(http)).GetProperty("worker_processes")[0];
        Assert.Equal(1, after.GetProperty("restarts").GetInt32());
        Assert.NotEqual(pid, after.GetProperty("pid").GetInt32());
        var exit = after.GetProperty("last_exit");
        Assert.Equal(9, exit.GetProperty("signal").GetInt32());
        Assert.Contains($"pid {pid}", exit.GetProperty("reason").GetString());
        Assert.Equal(greedy, await Complete(http, greedyPrompt, 0)); // the restarted worker serves as before
    }

    [Fact]
    public async Task A_hung_step_ends_the_worker_process_within_the_step_timeout_and_the_query_resumes_on_the_restarted_one()
    {
        // Each worker process's 5th engine step never returns; the query needs 6 steps on one process.
        await using var server = await DefaultModelServer.StartAsync(["--step-timeout", "2"],
            new() { ["ActorQuery:Faults:HangAtStep"] = "5" });
        var http = server.Http;
        int pid = (await Health(http)).GetProperty("worker_processes")[0].GetProperty("pid").GetInt32();
        var clock = Stopwatch.StartNew();

        using var r = await http.PostAsync("/query", new StringContent("""{"prompt":"What is 2 + 3?","max_tokens":6,"ignore_eos":true,"temperature":0}""",
            Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(6, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.StartsWith("5", body.GetProperty("text").GetString());
        var process = (await Health(http)).GetProperty("worker_processes")[0];
        Assert.Equal(1, process.GetProperty("restarts").GetInt32());
        Assert.NotEqual(pid, process.GetProperty("pid").GetInt32());
        Assert.Contains("no progress", process.GetProperty("last_exit").GetProperty("reason").GetString());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"answered after {clock.Elapsed}");
    }

    [Fact]
    public async Task Recycling_a_worker_process_by_name_restarts_it_and_an_unknown_id_is_a_404()
    {
        const string adminKey = "admin-key-0123456789";
        await using var server = await DefaultModelServer.StartAsync(["--admin-key", adminKey]); // /admin/* needs one
        var http = server.Http;
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", adminKey);
        int pid = (await Health(http)).GetProperty("worker_processes")[0].GetProperty("pid").GetInt32();

        using var unknown = await http.PostAsync("/admin/workers/worker-7/recycle", null);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("worker-1", await unknown.Content.ReadAsStringAsync());

        using var recycle = await http.PostAsync("/admin/workers/worker-1/recycle", null);
        Assert.Equal(HttpStatusCode.Accepted, recycle.StatusCode);
        await Eventually.Until(() => Health(http), h => h.GetProperty("status").GetString() == "ok"
                && h.GetProperty("worker_processes")[0].GetProperty("restarts").GetInt32() == 1
                && h.GetProperty("worker_processes")[0].GetProperty("state").GetString() == "ready",
            TimeSpan.FromSeconds(60), "the recycled worker process to be ready again", h => h.GetProperty("worker_processes").ToString());
        var p = (await Health(http)).GetProperty("worker_processes")[0];
        Assert.NotEqual(pid, p.GetProperty("pid").GetInt32());
        Assert.Contains("recycled", p.GetProperty("last_exit").GetProperty("reason").GetString());
        using var answer = await http.PostAsync("/query", new StringContent("""{"prompt":"What is 2 + 3?","temperature":0}""", Encoding.UTF8, "application/json"));
        Assert.Equal("5", JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement.GetProperty("text").GetString());
    }

    private static StringContent JsonBody(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>How long a greedy query of <paramref name="tokens"/> tokens takes.</summary>
    private static async Task<TimeSpan> Timed(HttpClient http, int tokens)
    {
        var clock = Stopwatch.StartNew();
        using var r = await http.PostAsync("/query", JsonBody($$"""{"prompt":"What is 2 + 3?","max_tokens":{{tokens}},"ignore_eos":true,"temperature":0}"""));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        return clock.Elapsed;
    }

    private static async Task<JsonElement> Send(HttpClient http, HttpMethod method, string path, string? body, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonBody(body) };
        using var r = await http.SendAsync(request);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == expected, $"{method} {path}: {(int)r.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Fact]
    public async Task Admin_cleanup_and_faults_reach_the_worker_in_the_worker_process_and_a_step_delay_and_leak_armed_there_show()
    {
        const string adminKey = "admin-key-0123456789";
        await using var server = await DefaultModelServer.StartAsync(["--admin-key", adminKey]);
        var http = server.Http;
        await Send(http, HttpMethod.Post, "/admin/cleanup", null, HttpStatusCode.Unauthorized);
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", adminKey);
        int pid = (await Health(http)).GetProperty("worker_processes")[0].GetProperty("pid").GetInt32();

        var cleaned = (await Send(http, HttpMethod.Post, "/admin/cleanup", null, HttpStatusCode.OK)).GetProperty("workers").EnumerateArray().Single();
        Assert.Equal(("worker-1", "ready", pid), (cleaned.GetProperty("worker").GetString(), cleaned.GetProperty("state").GetString(), cleaned.GetProperty("pid").GetInt32()));
        Assert.True(cleaned.GetProperty("resident_before_bytes").GetInt64() > 0 && cleaned.GetProperty("resident_after_bytes").GetInt64() > 0, cleaned.ToString());

        const int tokens = 12, delayMs = 100;
        var baseline = await Timed(http, tokens);
        var armed = (await Send(http, HttpMethod.Post, "/admin/faults", $$"""{"step_delay_ms":{{delayMs}},"leak_bytes_per_step":"4MiB"}""", HttpStatusCode.OK))
            .GetProperty("workers").EnumerateArray().Single();
        Assert.Equal(pid, armed.GetProperty("pid").GetInt32());
        Assert.Equal(delayMs, armed.GetProperty("faults").GetProperty("step_delay_ms").GetInt32());
        var slow = await Timed(http, tokens);
        var leaking = (await Send(http, HttpMethod.Get, "/admin/faults", null, HttpStatusCode.OK)).GetProperty("workers")[0];

        var disarmed = (await Send(http, HttpMethod.Post, "/admin/faults", "{}", HttpStatusCode.OK)).GetProperty("workers")[0];
        var fast = await Timed(http, tokens);

        var wait = TimeSpan.FromMilliseconds(tokens * delayMs);
        Assert.True(slow >= wait && slow - baseline > wait * 0.7, $"armed: {slow.TotalMilliseconds:0} ms, before: {baseline.TotalMilliseconds:0} ms");
        Assert.True(slow - fast > wait * 0.7, $"disarmed: {fast.TotalMilliseconds:0} ms, armed: {slow.TotalMilliseconds:0} ms");
        Assert.True(leaking.GetProperty("leaked_bytes").GetInt64() >= tokens * (4L << 20), leaking.ToString());
        Assert.Equal(0, disarmed.GetProperty("leaked_bytes").GetInt64()); // disarming the leak frees it
        Assert.Equal(0, disarmed.GetProperty("faults").GetProperty("step_delay_ms").GetInt32());
        var bad = await Send(http, HttpMethod.Post, "/admin/faults", """{"step_delay":5}""", HttpStatusCode.BadRequest);
        Assert.Equal("step_delay", bad.GetProperty("field").GetString());
    }
}
