using System.Diagnostics;
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
/// The admin operations on a node's workers: the router asks the node's own workers (in its process and in its worker
/// processes), never a worker of another node, gathers their answers, and names the ones that stay silent; faults armed
/// this way change the next steps of a running worker.
/// </summary>
public sealed class AdminSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    [Fact]
    public void Should_clean_up_every_worker_of_the_node_and_name_the_ones_that_do_not_answer()
    {
        var router = Sys.ActorOf(QueryRouter.Props("node-a", new RouterOptions(), new CacheOptions { Enabled = false }));
        var local = Sys.ActorOf(ModelSupervisor.Props("worker-1", "node-a", new FakeEngineFactory(), FastWorkers()));
        router.Tell(new RegisterWorker(local));
        var inWorkerProcess = CreateTestProbe();
        var elsewhere = CreateTestProbe();
        router.Tell(new WorkerLoadPublished(inWorkerProcess.Ref, new WorkerStatus { Worker = "worker-2", Node = "node-a", State = WorkerState.Ready }));
        router.Tell(new WorkerLoadPublished(elsewhere.Ref, new WorkerStatus { Worker = "worker-1", Node = "node-b", State = WorkerState.Ready }));
        AwaitCondition(() => RouterStatusOf(router).Workers.Any(w => w.Node == "node-a" && w.Worker == "worker-1" && w.State == WorkerState.Ready),
            TimeSpan.FromSeconds(10));

        router.Tell(new CleanupNode(TimeSpan.FromSeconds(1)), TestActor);

        inWorkerProcess.ExpectMsg<CleanupWorker>();
        elsewhere.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        var done = ExpectMsg<NodeCleanedUp>(TimeSpan.FromSeconds(5));
        var cleaned = Assert.Single(done.Workers);
        Assert.Equal(("worker-1", "node-a", "ready", Environment.ProcessId), (cleaned.Worker, cleaned.Node, cleaned.State, cleaned.ProcessId));
        Assert.True(cleaned.ResidentBeforeBytes > 0 && cleaned.ResidentAfterBytes > 0);
        Assert.Equal(["node-a/worker-2"], done.Silent);

        // The worker in the worker process answers this time: nobody is silent.
        router.Tell(new CleanupNode(TimeSpan.FromSeconds(5)), TestActor);
        inWorkerProcess.ExpectMsg<CleanupWorker>();
        inWorkerProcess.Reply(new WorkerCleanedUp("worker-2", "node-a", 4242, "ready", 300, 200, 20, 10));
        done = ExpectMsg<NodeCleanedUp>(TimeSpan.FromSeconds(5));
        Assert.Empty(done.Silent);
        Assert.Equal(100, done.Workers.Single(w => w.Worker == "worker-2").FreedBytes);
    }

    [Fact]
    public void Should_slow_a_running_workers_steps_when_a_step_delay_is_armed_and_speed_them_up_when_disarmed()
    {
        var router = Sys.ActorOf(QueryRouter.Props("node-a", new RouterOptions(), new CacheOptions { Enabled = false }));
        router.Tell(new RegisterWorker(Sys.ActorOf(ModelSupervisor.Props("worker-1", "node-a",
            new FaultInjectingEngineFactory(new FakeEngineFactory(), new FaultOptions(), live: true), FastWorkers()))));
        AwaitCondition(() => RouterStatusOf(router).AnyWorkerReady, TimeSpan.FromSeconds(10));

        router.Tell(new AskNodeFaults(new ArmFaults(new LiveFaults { StepDelayMs = 40, HangAtStep = 1000 }), TimeSpan.FromSeconds(5)), TestActor);
        var armed = Assert.Single(ExpectMsg<NodeFaults>(TimeSpan.FromSeconds(5)).Workers);
        Assert.Equal(40, armed.Faults!.StepDelayMs);
        Assert.Equal(armed.Steps + 1000, armed.Faults.HangAtStep); // counted from when it was armed
        var slow = Timed(router, "slow");

        router.Tell(new AskNodeFaults(new ArmFaults(LiveFaults.None), TimeSpan.FromSeconds(5)), TestActor);
        Assert.False(ExpectMsg<NodeFaults>(TimeSpan.FromSeconds(5)).Workers.Single().Faults!.Armed);
        var fast = Timed(router, "fast");

        Assert.True(slow > TimeSpan.FromMilliseconds(10 * 40), $"10 tokens with 40 ms per step took {slow.TotalMilliseconds:0} ms");
        Assert.True(fast < slow / 2, $"disarmed: {fast.TotalMilliseconds:0} ms, armed: {slow.TotalMilliseconds:0} ms");
        router.Tell(new AskNodeFaults(GetFaults.Instance, TimeSpan.FromSeconds(5)), TestActor);
        Assert.Equal(LiveFaults.None, ExpectMsg<NodeFaults>(TimeSpan.FromSeconds(5)).Workers.Single().Faults);
    }

    private TimeSpan Timed(IActorRef router, string id)
    {
        var client = CreateTestProbe();
        var clock = Stopwatch.StartNew();
        router.Tell(new SubmitQuery(Greedy(id, 10), client.Ref));
        QueryEvent e;
        do e = client.ExpectMsg<QueryEvent>(TimeSpan.FromSeconds(10));
        while (!e.IsTerminal);
        Assert.IsType<QueryCompleted>(e);
        return clock.Elapsed;
    }
}
