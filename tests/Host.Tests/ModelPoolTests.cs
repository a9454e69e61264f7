using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The shipped server as a model pool of real models (the default model under three names, each in worker processes of
/// its own): a request loads its model, the keep-alive unloads it, the admin API unloads one on request, and the state,
/// memory and counters show in /v1/models and /metrics.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class ModelPoolTests
{
    private const string AdminKey = "pool-admin-key-0123456789";

    private static async Task<JsonElement> Card(HttpClient http, string model)
    {
        using var r = await http.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var data = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
        return data.EnumerateArray().Single(m => m.GetProperty("id").GetString() == model).Clone();
    }

    private static async Task<string> State(HttpClient http, string model) => (await Card(http, model)).GetProperty("pool").GetProperty("state").GetString()!;

    private static async Task<JsonElement> Ask(HttpClient http, string model, string path = "/query")
    {
        var body = path == "/query"
            ? JsonSerializer.Serialize(new { model, prompt = "What is 2 + 3?", max_tokens = 4, temperature = 0 })
            : JsonSerializer.Serialize(new { model, messages = new[] { new { role = "user", content = "What is 2 + 3?" } }, max_tokens = 4 });
        using var r = await http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var json = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone();
        Assert.True(r.StatusCode == HttpStatusCode.OK, $"{(int)r.StatusCode}: {json}");
        return json;
    }

    [Fact]
    public async Task A_request_loads_its_model_the_keep_alive_unloads_it_and_the_admin_api_unloads_one_on_request()
    {
        await using var server = await DefaultModelServer.StartAsync([
            "--model", $"a={DefaultModelServer.ModelFolder}", "--model", $"b={DefaultModelServer.ModelFolder}",
            "--keep-alive", "b=1s", "--admin-key", AdminKey]);
        var http = server.Http;
        Assert.Equal("available", await State(http, "a"));
        Assert.Equal("available", await State(http, "b"));

        var a = await Ask(http, "a", "/v1/chat/completions");
        Assert.Equal("a", a.GetProperty("model").GetString());
        var card = (await Card(http, "a")).GetProperty("pool");
        Assert.Equal("ready", card.GetProperty("state").GetString());
        Assert.True(card.GetProperty("resident_bytes").GetInt64() > 50 << 20, card.ToString());
        Assert.Equal(1, card.GetProperty("loads").GetInt32());

        Assert.Equal("b", (await Ask(http, "b")).GetProperty("model").GetString());
        await Eventually.Until(() => State(http, "b"), s => s == "available", TimeSpan.FromSeconds(30), "b to unload after its keep-alive of 1 s");
        Assert.Equal(1, (await Card(http, "b")).GetProperty("pool").GetProperty("unloads").GetInt32());
        Assert.Equal("ready", await State(http, "a")); // its keep-alive is the default 5 minutes

        using (var denied = await http.PostAsync("/admin/models/a/unload", null))
            Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        using var unload = new HttpRequestMessage(HttpMethod.Post, "/admin/models/a/unload");
        unload.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        using (var r = await http.SendAsync(unload)) Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        await Eventually.Until(() => State(http, "a"), s => s == "available", TimeSpan.FromSeconds(30), "a to unload on request");
        using (var health = await http.GetAsync("/health"))
        {
            var processes = JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement.GetProperty("worker_processes");
            Assert.Equal(0, processes.GetArrayLength()); // every worker process ended: its memory is back with the kernel
        }

        using (var unknown = await http.PostAsync("/query", new StringContent("""{"model":"c","prompt":"hi"}""", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            Assert.Contains("served: default, a, b", await unknown.Content.ReadAsStringAsync());
        }
        var metrics = await http.GetStringAsync("/metrics");
        Assert.Contains("actorquery_model_loads_total{model=\"a\"} 1", metrics);
        Assert.Contains("actorquery_model_unloads_total{model=\"b\"} 1", metrics);
        Assert.Contains("actorquery_model_requests_total{model=\"b\"} 1", metrics);
    }

    [Fact]
    public async Task A_bad_pool_setting_is_refused_at_start_naming_it()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => DefaultModelServer.StartAsync(
            ["--model", $"a={DefaultModelServer.ModelFolder}", "--pin", "nope"]));
        Assert.Contains("ActorQuery:Pin 'nope' is not a model of the pool", e.Message);
        var keep = await Assert.ThrowsAnyAsync<Exception>(() => DefaultModelServer.StartAsync(
            ["--model", $"a={DefaultModelServer.ModelFolder}", "--keep-alive", "soon"]));
        Assert.Contains("ActorQuery:KeepAlive", keep.Message);
    }
}
