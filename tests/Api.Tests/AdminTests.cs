using System.Net;
using ActorQuery.Api.Security;
using ActorQuery.Api.Tests.Fakes;
using ActorQuery.Contracts;

namespace ActorQuery.Api.Tests;

/// <summary>/admin/* needs an admin key, whatever the route; POST /admin/drain stops admission as SIGTERM's drain does;
/// POST /admin/cleanup says what each worker freed; POST /admin/faults arms what its body says, and refuses what it cannot read.</summary>
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

    private static Task<ApiServer> AdminServer(FakeAdminClient admin) =>
        ApiServer.StartAsync(admin: admin, configure: o => o.Security = new SecurityOptions
        {
            ApiKeys = ApiKeySet.From([AuthTests.Key], null), AdminKeys = ApiKeySet.From([AdminKey], null),
        });

    [Fact]
    public async Task Cleanup_needs_the_admin_key_and_answers_what_each_worker_freed()
    {
        await using var server = await AdminServer(new FakeAdminClient());
        using var none = await AuthTests.Send(server.Http, "/admin/cleanup", "{}", null);
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        using var apiKey = await AuthTests.Send(server.Http, "/admin/cleanup", "{}", AuthTests.Key);
        Assert.Equal(HttpStatusCode.Forbidden, apiKey.StatusCode);

        using var r = await AuthTests.Send(server.Http, "/admin/cleanup", "{}", AdminKey);

        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var body = await Json.ReadAsync(r);
        Assert.Equal(3, body.GetProperty("cache_entries_dropped").GetInt32());
        var workers = body.GetProperty("workers").EnumerateArray().ToList();
        Assert.Equal(["worker-1", "worker-2"], workers.Select(w => w.GetProperty("worker").GetString()));
        Assert.All(workers, w =>
        {
            Assert.Equal(FakeAdminClient.Pid, w.GetProperty("pid").GetInt32());
            Assert.Equal(FakeAdminClient.FreedPerWorker, w.GetProperty("freed_bytes").GetInt64());
            Assert.Equal(FakeAdminClient.FreedPerWorker, w.GetProperty("resident_before_bytes").GetInt64() - w.GetProperty("resident_after_bytes").GetInt64());
        });
        // Both workers live in one process: the node freed what that process freed, once.
        Assert.Equal(2 * FakeAdminClient.FreedPerWorker, body.GetProperty("freed_bytes").GetInt64());
    }

    [Fact]
    public async Task A_worker_that_does_not_answer_makes_cleanup_and_faults_a_503_naming_it()
    {
        await using var server = await AdminServer(new FakeAdminClient { SilentWorker = "worker-2" });
        foreach (var (path, body) in new[] { ("/admin/cleanup", "{}"), ("/admin/faults", """{"step_delay_ms": 5}"""), ("/admin/faults", null) })
        {
            using var r = await AuthTests.Send(server.Http, path, body, AdminKey);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
            var detail = (await Json.ReadAsync(r)).GetProperty("detail").GetString();
            Assert.Contains("node-a/worker-2 did not answer", detail);
            Assert.Contains("node-a/worker-1", detail);
        }
    }

    [Fact]
    public async Task Faults_are_armed_as_posted_read_back_disarmed_by_an_empty_body_and_need_the_admin_key()
    {
        var admin = new FakeAdminClient();
        await using var server = await AdminServer(admin);
        using var apiKey = await AuthTests.Send(server.Http, "/admin/faults", """{"step_delay_ms": 5}""", AuthTests.Key);
        Assert.Equal(HttpStatusCode.Forbidden, apiKey.StatusCode);
        using var getNone = await AuthTests.Send(server.Http, "/admin/faults", null, null);
        Assert.Equal(HttpStatusCode.Unauthorized, getNone.StatusCode);
        Assert.Equal(LiveFaults.None, admin.Armed);

        using var arm = await AuthTests.Send(server.Http, "/admin/faults",
            """{"leak_bytes_per_step": "64MiB", "step_delay_ms": 25, "oom_every_nth_step": 40, "crash_every_nth_step": 7, "hang_at_step": 3}""", AdminKey);

        Assert.Equal(HttpStatusCode.OK, arm.StatusCode);
        Assert.Equal(new LiveFaults { LeakBytesPerStep = 64L << 20, StepDelayMs = 25, OomEveryNthStep = 40, CrashEveryNthStep = 7, HangAtStep = 3 }, admin.Armed);
        var armed = (await Json.ReadAsync(arm)).GetProperty("armed");
        Assert.Equal(64L << 20, armed.GetProperty("leak_bytes_per_step").GetInt64());
        using var get = await AuthTests.Send(server.Http, "/admin/faults", null, AdminKey);
        var worker = (await Json.ReadAsync(get)).GetProperty("workers")[0];
        Assert.Equal(25, worker.GetProperty("faults").GetProperty("step_delay_ms").GetInt32());
        Assert.Equal(FakeAdminClient.Pid, worker.GetProperty("pid").GetInt32());

        using var bytes = await AuthTests.Send(server.Http, "/admin/faults", """{"leak_bytes_per_step": 4096}""", AdminKey);
        Assert.Equal(HttpStatusCode.OK, bytes.StatusCode);
        Assert.Equal(new LiveFaults { LeakBytesPerStep = 4096 }, admin.Armed); // the fields left out are off

        using var disarm = await AuthTests.Send(server.Http, "/admin/faults", "{}", AdminKey);
        Assert.Equal(HttpStatusCode.OK, disarm.StatusCode);
        Assert.Equal(LiveFaults.None, admin.Armed);
    }

    [Theory]
    [InlineData("""{"step_delay": 5}""", "step_delay", "unknown fault")]
    [InlineData("""{"step_delay_ms": -1}""", "step_delay_ms", "[0, 60000]")]
    [InlineData("""{"step_delay_ms": "5"}""", "step_delay_ms", "whole number")]
    [InlineData("""{"oom_every_nth_step": 1.5}""", "oom_every_nth_step", "whole number")]
    [InlineData("""{"leak_bytes_per_step": "lots"}""", "leak_bytes_per_step", "is not a size")]
    [InlineData("""{"leak_bytes_per_step": "2GiB"}""", "leak_bytes_per_step", "[0, 1GiB]")]
    [InlineData("""{"hang_at_step": null}""", "hang_at_step", "whole number")]
    public async Task A_fault_field_that_is_unknown_or_bad_is_a_400_naming_it_and_arms_nothing(string body, string field, string reason)
    {
        var admin = new FakeAdminClient();
        await using var server = await AdminServer(admin);

        using var r = await AuthTests.Send(server.Http, "/admin/faults", body, AdminKey);

        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var error = await Json.ReadAsync(r);
        Assert.Equal(field, error.GetProperty("field").GetString());
        Assert.Contains(reason, error.GetProperty("detail").GetString());
        Assert.Equal(LiveFaults.None, admin.Armed);
    }
}
