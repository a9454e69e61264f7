using System.Net;
using System.Text;
using ActorQuery.Host.Serve;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

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

/// <summary>The shipped server with the default model on a free loopback port, ready, and a client for it.</summary>
internal sealed class DefaultModelServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private DefaultModelServer(WebApplication app, HttpClient http)
    {
        _app = app;
        Http = http;
    }

    public HttpClient Http { get; }

    /// <param name="args">serve options besides the model, address, logs, device and dtype (answer cache off).</param>
    /// <param name="settings">configuration keys set on top (faults, worker options).</param>
    public static async Task<DefaultModelServer> StartAsync(string[] args, Dictionary<string, string?> settings)
    {
        var logs = Directory.CreateTempSubdirectory("aq-real-").FullName;
        var overrides = ServeCli.Parse(["--model", Path.Combine(AppContext.BaseDirectory, "models", "default"),
            "--urls", "http://127.0.0.1:0", "--log-folder", logs, "--device", "cpu", "--dtype", "float32",
            "--cache-entries", "0", .. args]);
        foreach (var (key, value) in settings) overrides[key] = value;
        var app = ServeApp.Build(overrides, ServeBackends.Default());
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(60) };
        for (int i = 0; i < 300 && (await http.GetAsync("/health/ready")).StatusCode != HttpStatusCode.OK; i++)
            await Task.Delay(100);
        return new DefaultModelServer(app, http);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
