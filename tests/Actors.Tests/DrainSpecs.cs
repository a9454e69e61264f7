using Akka.Actor;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.TestSupport;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// A node that shuts down: its router tells the node's own workers (in its process and in its worker processes) to drain;
/// they finish what they run, report Draining so that every gateway routes around them, and the router's AbortAll ends
/// what is still running at the drain timeout with a shutting-down refusal instead of a cut.
/// </summary>
public sealed class DrainSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    [Fact]
    public void Should_drain_the_nodes_own_workers_only_and_let_their_running_query_finish()
    {
        var router = Sys.ActorOf(QueryRouter.Props("node-a", new RouterOptions(), new CacheOptions { Enabled = false }));
        var local = Sys.ActorOf(ModelSupervisor.Props("worker-1", "node-a", new FaultInjectingEngineFactory(new FakeEngineFactory(),
            new FaultOptions { StepDelayMs = 20 }), FastWorkers()));
        router.Tell(new RegisterWorker(local));
        var inWorkerProcess = CreateTestProbe();
        var elsewhere = CreateTestProbe();
        router.Tell(new WorkerLoadPublished(inWorkerProcess.Ref, new WorkerStatus { Worker = "worker-2", Node = "node-a", State = WorkerState.Loading }));
        router.Tell(new WorkerLoadPublished(elsewhere.Ref, new WorkerStatus { Worker = "worker-1", Node = "node-b", State = WorkerState.Loading }));
        AwaitCondition(() => RouterStatusOf(router).Workers.Any(w => w.Node == "node-a" && w.State == WorkerState.Ready), TimeSpan.FromSeconds(10));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("running", 20), client.Ref));
        client.ExpectMsg<TokensGenerated>(TimeSpan.FromSeconds(5));

        router.Tell(StartDraining.Instance);

        inWorkerProcess.ExpectMsg<DrainWorker>();
        elsewhere.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        AwaitCondition(() => RouterStatusOf(router).Workers.Single(w => w.Worker == "worker-1" && w.Node == "node-a").State == WorkerState.Draining);
        QueryEvent e;
        do e = client.ExpectMsg<QueryEvent>(TimeSpan.FromSeconds(10));
        while (!e.IsTerminal);
        Assert.Equal(20, Assert.IsType<QueryCompleted>(e).CompletionTokens);
    }

    [Fact]
    public void Should_end_what_still_runs_at_the_drain_timeout_with_a_shutting_down_refusal()
    {
        var router = Sys.ActorOf(QueryRouter.Props("node-a", new RouterOptions(), new CacheOptions { Enabled = false }));
        router.Tell(new RegisterWorker(Sys.ActorOf(ModelSupervisor.Props("worker-1", "node-a",
            new FaultInjectingEngineFactory(new FakeEngineFactory(), new FaultOptions { StepDelayMs = 50 }), FastWorkers()))));
        AwaitCondition(() => RouterStatusOf(router).AnyWorkerReady, TimeSpan.FromSeconds(10));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("long", 200), client.Ref));
        client.ExpectMsg<TokensGenerated>(TimeSpan.FromSeconds(5));

        router.Tell(new AbortAll("the node is shutting down: its drain timeout of 30 s passed"));

        var refused = client.FishForMessage<QueryRefused>(_ => true, TimeSpan.FromSeconds(5));
        Assert.Equal(RefusalReason.ShuttingDown, refused.Reason);
        Assert.Contains("drain timeout", refused.Message);
    }
}
