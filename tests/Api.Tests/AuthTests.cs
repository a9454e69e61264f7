using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ActorQuery.Api.Security;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

/// <summary>API keys as a client meets them on real Kestrel: 401 without or with a wrong key (in each endpoint's error
/// shape, with WWW-Authenticate), 200 with the right one, the probes open.</summary>
public sealed class AuthTests(AuthTests.KeyedServer keyed) : IClassFixture<AuthTests.KeyedServer>
{
    public const string Key = "test-key-0123456789abcdef";
    public const string OtherKey = "other-key-0123456789abcdef";
    private const string Chat = """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}""";

    public sealed class KeyedServer : IAsyncLifetime
    {
        public ApiServer Server { get; private set; } = null!;
        public async Task InitializeAsync() =>
            Server = await ApiServer.StartAsync(configure: o => o.Security = new SecurityOptions { ApiKeys = ApiKeySet.From([Key, OtherKey], null) });
        public async Task DisposeAsync() => await Server.DisposeAsync();
    }

    private ApiServer Server => keyed.Server;

    public static TheoryData<string, string?> Endpoints => new()
    {
        { "/query", """{"prompt": "hi", "max_new_tokens": 2}""" },
        { "/v1/chat/completions", Chat },
        { "/v1/completions", """{"prompt": "hi", "max_tokens": 2}""" },
        { "/v1/models", null },
        { "/memory", null },
        { "/health", null },
        { "/cluster", null },
        { "/", null },
    };

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task Without_a_key_every_endpoint_is_401_in_its_own_error_shape_with_a_bearer_challenge(string path, string? body)
    {
        using var r = await Send(path, body, key: null);
        await AssertUnauthorized(r, path, "missing_api_key");
        Assert.Equal("Bearer", r.Headers.WwwAuthenticate.Single().Scheme);
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task A_wrong_key_is_401_naming_the_key_as_invalid(string path, string? body)
    {
        using var r = await Send(path, body, key: "not-the-key-0123456789");
        await AssertUnauthorized(r, path, "invalid_api_key");
        Assert.Equal("Bearer error=\"invalid_token\"", r.Headers.WwwAuthenticate.Single().ToString());
    }

    [Theory]
    [InlineData("/query", """{"prompt": "hi", "max_new_tokens": 2}""")]
    [InlineData("/v1/chat/completions", Chat)]
    [InlineData("/v1/models", null)]
    [InlineData("/memory", null)]
    [InlineData("/health", null)]
    public async Task The_right_key_is_200(string path, string? body)
    {
        using var r = await Send(path, body, Key);
        Assert.True(r.StatusCode == HttpStatusCode.OK, $"{path}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        using var other = await Send(path, body, OtherKey);
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task The_scheme_is_read_case_insensitively_and_other_schemes_are_refused()
    {
        using var lower = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        lower.Headers.TryAddWithoutValidation("Authorization", "bearer " + Key);
        Assert.Equal(HttpStatusCode.OK, (await Server.Http.SendAsync(lower)).StatusCode);
        using var basic = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        basic.Headers.Authorization = new AuthenticationHeaderValue("Basic", Key);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Server.Http.SendAsync(basic)).StatusCode);
    }

    [Theory]
    [InlineData("/health/live")]
    [InlineData("/health/ready")]
    [InlineData("/metrics")]
    [InlineData("/ui")]
    public async Task Probes_metrics_and_the_dashboard_page_are_open(string path)
    {
        using var r = await Server.Http.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    [Fact]
    public async Task The_live_feed_takes_the_key_as_access_token_which_no_other_endpoint_does()
    {
        using var open = await Server.Http.GetAsync($"/events?access_token={Key}", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, open.StatusCode);
        Assert.Equal("text/event-stream", open.Content.Headers.ContentType?.MediaType);
        using var wrong = await Server.Http.GetAsync("/events?access_token=nope-nope-nope-nope", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        using var none = await Server.Http.GetAsync("/events", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        using var elsewhere = await Server.Http.GetAsync($"/v1/models?access_token={Key}");
        Assert.Equal(HttpStatusCode.Unauthorized, elsewhere.StatusCode);
    }

    [Fact]
    public async Task The_openapi_document_is_open_and_declares_the_bearer_key_so_docs_can_send_it()
    {
        using var r = await Server.Http.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var document = await Json.ReadAsync(r);
        var scheme = document.GetProperty("components").GetProperty("securitySchemes").GetProperty("apiKey");
        Assert.Equal("http", scheme.GetProperty("type").GetString());
        Assert.Equal("bearer", scheme.GetProperty("scheme").GetString());
        Assert.True(document.GetProperty("security")[0].TryGetProperty("apiKey", out _));
    }

    [Fact]
    public async Task Metrics_need_a_key_with_metrics_auth()
    {
        await using var server = await ApiServer.StartAsync(configure: o => o.Security = new SecurityOptions
        {
            ApiKeys = ApiKeySet.From([Key], null), MetricsAuth = true,
        });
        using var none = await server.Http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics") { Headers = { Authorization = new("Bearer", Key) } };
        using var keyed = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, keyed.StatusCode);
        Assert.Contains("actorquery_requests_total", await keyed.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_key_file_of_sha256_hashes_accepts_the_keys_they_hash_and_no_other()
    {
        string file = Path.GetTempFileName();
        // As `printf %s KEY | sha256sum` writes it, a label, a comment and a blank line.
        await File.WriteAllLinesAsync(file, [
            "# API keys of the team",
            Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Key))) + "  -",
            "",
            Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(OtherKey))) + " billing",
        ]);
        var set = ApiKeySet.From([], file);
        Assert.Equal(2, set.Keys.Count);
        Assert.Equal("billing", set.Match(OtherKey)?.Label);
        Assert.NotNull(set.Match(Key));
        Assert.Null(set.Match("not-a-key-of-the-file"));
        await File.WriteAllLinesAsync(file, ["not-a-hash"]);
        var e = Assert.Throws<FormatException>(() => ApiKeySet.From([], file));
        Assert.Contains("line 1", e.Message);
    }

    private Task<HttpResponseMessage> Send(string path, string? body, string? key) => Send(Server.Http, path, body, key);

    internal static async Task<HttpResponseMessage> Send(HttpClient http, string path, string? body, string? key)
    {
        using var request = new HttpRequestMessage(body is null ? HttpMethod.Get : HttpMethod.Post, path);
        if (body is not null) request.Content = Json.Body(body);
        if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await http.SendAsync(request);
    }

    private static async Task AssertUnauthorized(HttpResponseMessage r, string path, string code)
    {
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.Unauthorized, $"{path}: {(int)r.StatusCode} {text}");
        var body = JsonDocument.Parse(text).RootElement;
        if (path.StartsWith("/v1"))
        {
            var error = body.GetProperty("error");
            Assert.Equal(code, error.GetProperty("code").GetString());
            Assert.Equal("authentication_error", error.GetProperty("type").GetString());
            Assert.Contains("API key", error.GetProperty("message").GetString());
        }
        else
        {
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
            Assert.Equal(401, body.GetProperty("status").GetInt32());
            Assert.Equal(code, body.GetProperty("code").GetString());
            Assert.Contains("API key", body.GetProperty("detail").GetString());
        }
    }
}
