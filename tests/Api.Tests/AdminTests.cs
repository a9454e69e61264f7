using System.Net;
using ActorQuery.Api.Security;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

/// <summary>/admin/* needs an admin key, whatever the route; POST /admin/drain stops admission as SIGTERM's drain does.</summary>
public sealed class AdminTests
{
    private const string AdminKey = "admin-key-0123456789abcdef";

    [Fact]
    public async Task Admin_paths_are_401_without_a_key_403_with_an_api_key_and_drain_with_the_admin_key_stops_admission()
    {
        await using var server = await ApiServer.StartAsync(configure: o => o.Security = new SecurityOptions
        {
            ApiKeys = ApiKeySet.From([AuthTests.Key], null), AdminKeys = ApiKeySet.From([AdminKey], null),
        });
        using var none = await AuthTests.Send(server.Http, "/admin/drain", "{}", null);
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal("Bearer", none.Headers.WwwAuthenticate.Single().Scheme);
        using var apiKey = await AuthTests.Send(server.Http, "/admin/drain", "{}", AuthTests.Key);
        Assert.Equal(HttpStatusCode.Forbidden, apiKey.StatusCode);
        Assert.Contains("not an admin key", (await Json.ReadAsync(apiKey)).GetProperty("detail").GetString());
        // A route that does not exist (yet) under /admin is covered by the same rule.
        using var unknown = await AuthTests.Send(server.Http, "/admin/workers/worker-1/recycle", "{}", AuthTests.Key);
        Assert.Equal(HttpStatusCode.Forbidden, unknown.StatusCode);
        using var upper = await AuthTests.Send(server.Http, "/ADMIN/drain", "{}", AuthTests.Key);
        Assert.Equal(HttpStatusCode.Forbidden, upper.StatusCode);
        // The admin key also works where an API key does.
        Assert.Equal(HttpStatusCode.OK, (await AuthTests.Send(server.Http, "/query", """{"prompt": "hi", "max_new_tokens": 2}""", AdminKey)).StatusCode);

        using var drain = await AuthTests.Send(server.Http, "/admin/drain", "{}", AdminKey);
        Assert.Equal(HttpStatusCode.OK, drain.StatusCode);
        Assert.True((await Json.ReadAsync(drain)).GetProperty("draining").GetBoolean());

        using var query = await AuthTests.Send(server.Http, "/query", """{"prompt": "hi", "max_new_tokens": 2}""", AuthTests.Key);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, query.StatusCode);
        Assert.Equal("shutting_down", (await Json.ReadAsync(query)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await server.Http.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Without_an_admin_key_configured_admin_paths_are_403_with_the_reason_even_when_the_api_is_open()
    {
        await using var server = await ApiServer.StartAsync();
        using var r = await AuthTests.Send(server.Http, "/admin/drain", "{}", null);
        Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
        Assert.Contains("no admin key is configured", (await Json.ReadAsync(r)).GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetAsync("/health/ready")).StatusCode);
    }
}
