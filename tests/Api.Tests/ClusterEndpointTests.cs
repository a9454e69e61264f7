using System.Net;
using ActorQuery.Actors;
using ActorQuery.Actors.Cluster;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

public sealed class ClusterEndpointTests
{
    private sealed class FakeClusterView(Func<ClusterView> view) : IClusterViewClient
    {
        public Task<ClusterView> GetViewAsync(TimeSpan timeout, CancellationToken cancellationToken) => Task.FromResult(view());
    }

    private const string A = "akka.tcp://actorquery@127.0.0.1:9100", B = "akka.tcp://actorquery@127.0.0.1:9101";

    private static WorkerStatus Worker(string node, WorkerState state, int running, int queued, int kvFree) =>
        new() { Worker = "worker-1", Node = node, State = state, Model = "byte-model", Running = running, Queued = queued,
                KvFreeTokens = kvFree, KvCapacityTokens = 4096 };

    [Fact]
    public async Task Cluster_lists_members_with_roles_status_and_reachability_and_each_workers_state_and_load()
    {
        var seen = DateTimeOffset.Parse("2026-11-27T17:00:00Z");
        var view = new ClusterView(A, ["gateway", "worker"], A,
            [new ClusterMemberView(A, ["gateway", "worker"], "Up", true, true, true),
             new ClusterMemberView(B, ["worker"], "WeaklyUp", false, false, false)],
            [new ClusterWorkerView(A, Worker("node-0", WorkerState.Ready, 2, 1, 3000), seen),
             new ClusterWorkerView(B, Worker("node-1", WorkerState.Restarting, 0, 0, 0), seen)]);
        await using var server = await ApiServer.StartAsync(cluster: new FakeClusterView(() => view));

        var r = await server.Http.GetAsync("/cluster");

        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var body = await Json.ReadAsync(r);
        Assert.True(body.GetProperty("enabled").GetBoolean());
        Assert.Equal(A, body.GetProperty("self").GetString());
        Assert.Equal(A, body.GetProperty("leader").GetString());
        var members = body.GetProperty("members");
        Assert.Equal(2, members.GetArrayLength());
        Assert.Equal("up", members[0].GetProperty("status").GetString());
        Assert.Equal(["gateway", "worker"], members[0].GetProperty("roles").EnumerateArray().Select(x => x.GetString()));
        Assert.Equal("weakly_up", members[1].GetProperty("status").GetString());
        Assert.False(members[1].GetProperty("reachable").GetBoolean());
        Assert.Equal([B], body.GetProperty("unreachable").EnumerateArray().Select(x => x.GetString()));
        var w = body.GetProperty("workers");
        Assert.Equal(("ready", 2, 1, 3, 3000), (w[0].GetProperty("state").GetString(), w[0].GetProperty("running").GetInt32(),
            w[0].GetProperty("queued").GetInt32(), w[0].GetProperty("load").GetInt32(), w[0].GetProperty("kv_free_tokens").GetInt32()));
        Assert.Equal((B, "node-1", "restarting"), (w[1].GetProperty("address").GetString(), w[1].GetProperty("node").GetString(),
            w[1].GetProperty("state").GetString()));
        Assert.Equal(seen, w[1].GetProperty("last_seen").GetDateTimeOffset());
    }

    [Fact]
    public async Task Cluster_without_akka_cluster_says_so_and_lists_the_nodes_own_workers()
    {
        await using var server = await ApiServer.StartAsync();
        var body = await Json.ReadAsync(await server.Http.GetAsync("/cluster"));
        Assert.False(body.GetProperty("enabled").GetBoolean());
        Assert.Equal(0, body.GetProperty("members").GetArrayLength());
        Assert.Equal("ready", body.GetProperty("workers")[0].GetProperty("state").GetString());
    }

    [Fact]
    public async Task Cluster_is_503_with_a_reason_when_the_cluster_view_does_not_answer()
    {
        await using var server = await ApiServer.StartAsync(cluster: new FakeClusterView(() => throw new TimeoutException("no answer in 2s")));
        var r = await server.Http.GetAsync("/cluster");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        Assert.Contains("no answer in 2s", await r.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Cluster_is_documented_in_the_openapi_document()
    {
        await using var server = await ApiServer.StartAsync();
        var doc = await Json.ReadAsync(await server.Http.GetAsync("/openapi/v1.json"));
        var get = doc.GetProperty("paths").GetProperty("/cluster").GetProperty("get");
        Assert.Contains("least-loaded", get.GetProperty("description").GetString());
        Assert.True(get.GetProperty("responses").TryGetProperty("200", out _));
        Assert.True(doc.GetProperty("components").GetProperty("schemas").TryGetProperty("ClusterResponse", out _));
    }
}
