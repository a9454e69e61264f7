using Akka.Actor;
using Akka.TestKit;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using ActorQuery.Contracts;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>The router in front of a model pool (a probe): a query for a model that is not loaded waits for it, its live
/// count reaches the pool, and the pool's refusal ends the waiting queries with its reason.</summary>
public sealed class ModelPoolRoutingSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    private static WorkerStatus Status(string worker, string model, WorkerState state = WorkerState.Ready) =>
        new() { Worker = worker, Node = "node-a", State = state, Model = model, KvFreeTokens = 1000, KvCapacityTokens = 1000 };

    private (IActorRef Router, TestProbe Pool, TestProbe LoadedA) Start()
    {
        var router = Sys.ActorOf(QueryRouter.Props("node-a", new RouterOptions(), new CacheOptions { Enabled = false }));
        var pool = CreateTestProbe();
        router.Tell(new ModelCatalog(pool.Ref, ["a", "b"]));
        var a = CreateTestProbe();
        router.Tell(new RegisterWorker(a.Ref));
        a.ExpectMsg<SubscribeWorkerStatus>();
        router.Tell(Status("worker-1", "a"), a.Ref);
        return (router, pool, a);
    }

    [Fact]
    public void Should_hold_a_query_for_a_model_that_is_not_loaded_and_send_it_to_the_models_worker_once_ready()
    {
        var (router, pool, a) = Start();
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("q1") with { Model = "b", KeepAlive = TimeSpan.FromSeconds(30) }, client.Ref));

        var activity = pool.ExpectMsg<ModelActivity>();
        Assert.Equal(("b", 1, (TimeSpan?)TimeSpan.FromSeconds(30)), (activity.Model, activity.Live, activity.KeepAlive));
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(200));          // a's worker does not serve b
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(10));      // held, not refused

        var b = CreateTestProbe();
        router.Tell(new RegisterWorker(b.Ref));
        b.ExpectMsg<SubscribeWorkerStatus>();
        router.Tell(Status("worker-2", "b"), b.Ref);
        var run = b.ExpectMsg<RunQuery>();
        Assert.Equal("q1", run.Request.QueryId);

        router.Tell(new QueryProgress(run.Ticket, new QueryCompleted("q1", FinishReason.Length, 3, 4, false, "worker-2")), b.Ref);
        client.ExpectMsg<QueryCompleted>();
        Assert.Equal(("b", 0), (pool.ExpectMsg<ModelActivity>().Model, 0));
    }

    [Fact]
    public void Should_send_a_query_for_a_model_only_another_nodes_pool_loads_to_that_pool_and_wait_for_its_worker()
    {
        var (router, pool, _) = Start();
        var elsewhere = CreateTestProbe();                      // stands in for another node's pool
        router.Tell(new ModelCatalogPublished(elsewhere.Ref, ["c"]));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("qc") with { Model = "c" }, client.Ref));

        Assert.Equal(("c", 1), (elsewhere.ExpectMsg<ModelActivity>().Model, 1));
        pool.ExpectNoMsg(TimeSpan.FromMilliseconds(100));     // this node's pool cannot load c
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(10));

        var c = CreateTestProbe();                              // c's worker, as that node publishes it
        router.Tell(new ActorQuery.Actors.Cluster.WorkerLoadPublished(c.Ref, Status("worker-9", "c")));
        Assert.Equal("qc", c.ExpectMsg<RunQuery>().Request.QueryId);
    }

    [Fact]
    public void Should_refuse_the_waiting_queries_of_a_model_the_pool_cannot_serve_with_its_reason_and_keep_the_others()
    {
        var (router, pool, a) = Start();
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("qb") with { Model = "b" }, client.Ref));
        pool.ExpectMsg<ModelActivity>();

        router.Tell(new ModelUnavailable("b", "no room for model 'b'", TimeSpan.FromSeconds(10)));
        var refused = client.ExpectMsg<QueryRefused>();
        Assert.Equal(("qb", RefusalReason.NoModelReady, "no room for model 'b'", (TimeSpan?)TimeSpan.FromSeconds(10)),
            (refused.QueryId, refused.Reason, refused.Message, refused.RetryAfter));

        router.Tell(new SubmitQuery(Greedy("qa") with { Model = "a" }, client.Ref));
        Assert.Equal("qa", a.ExpectMsg<RunQuery>().Request.QueryId);
    }
}
