using System.Net;
using ActorQuery.Api.Security;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

/// <summary>Each key's limits: 429 with Retry-After and the limit named, in the endpoint's error shape; other keys unaffected.</summary>
public sealed class KeyLimitTests
{
    private const string Key = AuthTests.Key, OtherKey = AuthTests.OtherKey;

    private static Task<ApiServer> Start(int rpm = 0, int tpm = 0, int concurrent = 0) =>
        ApiServer.StartAsync(configure: o => o.Security = new SecurityOptions
        {
            ApiKeys = ApiKeySet.From([Key, OtherKey], null), RequestsPerMinute = rpm, TokensPerMinute = tpm, ConcurrentRequests = concurrent,
        });

    [Fact]
    public async Task Over_its_requests_per_minute_a_key_gets_429_with_retry_after_naming_the_limit_while_another_key_is_served()
    {
        await using var server = await Start(rpm: 2);
        const string query = """{"prompt": "hi", "max_new_tokens": 2}""";
        for (int i = 0; i < 2; i++)
            Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/query", query, Key)).StatusCode);

        using var refused = await AuthTests.Send(server.Http, "/query", query, Key);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        var retry = refused.Headers.RetryAfter?.Delta;
        Assert.True(retry is { } d && d > TimeSpan.Zero && d <= TimeSpan.FromMinutes(1), $"Retry-After {retry}");
        var problem = await Json.ReadAsync(refused);
        Assert.Contains("2 requests per minute", problem.GetProperty("detail").GetString());
        Assert.Equal("rate_limit_exceeded", problem.GetProperty("code").GetString());

        using var openAi = await AuthTests.Send(server.Http, "/v1/completions", """{"prompt": "hi", "max_tokens": 2}""", Key);
        Assert.Equal(HttpStatusCode.TooManyRequests, openAi.StatusCode);
        var error = (await Json.ReadAsync(openAi)).GetProperty("error");
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        Assert.Contains("2 requests per minute", error.GetProperty("message").GetString());
        Assert.NotNull(openAi.Headers.RetryAfter);

        Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/query", query, OtherKey)).StatusCode);
        // Reads are not generation: the limited key still lists the models.
        Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/v1/models", null, Key)).StatusCode);
    }

    [Fact]
    public async Task Tokens_per_minute_count_each_requests_max_tokens_when_it_is_admitted()
    {
        await using var server = await Start(tpm: 100);
        Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/v1/completions", """{"prompt": "hi", "max_tokens": 60}""", Key)).StatusCode);
        using var refused = await AuthTests.Send(server.Http, "/v1/completions", """{"prompt": "hi", "max_tokens": 60}""", Key);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        Assert.Contains("100 tokens per minute", (await Json.ReadAsync(refused)).GetProperty("error").GetProperty("message").GetString());
        // What is left of the minute is still usable.
        Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/v1/completions", """{"prompt": "hi", "max_tokens": 40}""", Key)).StatusCode);

        // A request that alone is over the limit could never pass: 400 naming its field, not a 429 to retry.
        using var never = await AuthTests.Send(server.Http, "/query", """{"prompt": "hi", "max_new_tokens": 101}""", OtherKey);
        Assert.Equal(HttpStatusCode.BadRequest, never.StatusCode);
        Assert.Equal("max_new_tokens", (await Json.ReadAsync(never)).GetProperty("field").GetString());
    }

    [Fact]
    public async Task A_keys_own_limits_from_its_line_in_the_key_file_override_the_settings()
    {
        string file = Path.GetTempFileName();
        string Hash(string key) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)));
        await File.WriteAllLinesAsync(file, [$"{Hash(Key)} trial requests-per-minute=1", $"{Hash(OtherKey)} batch requests-per-minute=0"]);
        await using var server = await ApiServer.StartAsync(configure: o => o.Security = new SecurityOptions
        {
            ApiKeys = ApiKeySet.From([], file), RequestsPerMinute = 2,
        });
        const string query = """{"prompt": "hi", "max_new_tokens": 2}""";
        Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/query", query, Key)).StatusCode);
        using var refused = await AuthTests.Send(server.Http, "/query", query, Key);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Contains("API key 'trial' is over its limit of 1 request per minute", (await Json.ReadAsync(refused)).GetProperty("detail").GetString());
        for (int i = 0; i < 4; i++) // 0: unlimited, over the settings' 2
            Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/query", query, OtherKey)).StatusCode);

        await File.WriteAllLinesAsync(file, [$"{Hash(Key)} trial requests-per-hour=1"]);
        Assert.Contains("requests-per-minute=N", Assert.Throws<FormatException>(() => ApiKeySet.From([], file)).Message);
    }

    [Fact]
    public async Task Over_its_concurrent_requests_a_key_gets_429_until_its_running_request_ends()
    {
        await using var server = await Start(concurrent: 1);
        var held = AuthTests.Send(server.Http, "/query", """{"prompt": "#hold", "max_new_tokens": 2}""", Key);
        await ActorQuery.TestSupport.Eventually.Until(() => server.Fake.Active == 1, TimeSpan.FromSeconds(10), "the held query to run");

        using var refused = await AuthTests.Send(server.Http, "/query", """{"prompt": "hi", "max_new_tokens": 2}""", Key);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.NotNull(refused.Headers.RetryAfter);
        Assert.Contains("1 request at once", (await Json.ReadAsync(refused)).GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/query", """{"prompt": "hi", "max_new_tokens": 2}""", OtherKey)).StatusCode);

        server.Fake.Release();
        Assert.Equal(HttpStatusCode.OK, (await held).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/query", """{"prompt": "hi", "max_new_tokens": 2}""", Key)).StatusCode);
    }
}
