using Akka.Actor;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using ActorQuery.Contracts;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// The router while a worker process restarts: its queries are held, not refused, and a query that had tokens resumes
/// on the restarted process's worker from exactly those tokens; once the process is given up they are refused.
/// </summary>
public sealed class WorkerProcessRoutingSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    private IActorRef NewRouter() => Sys.ActorOf(QueryRouter.Props("node-a", new RouterOptions(), new CacheOptions { Enabled = false }));

    private static WorkerStatus Ready(string worker) => new() { Worker = worker, Node = "node-a", State = WorkerState.Ready, Model = "m" };

    private Address Local => ((ExtendedActorSystem)Sys).Provider.DefaultAddress;

    [Fact]
    public void Should_hold_queries_while_a_worker_process_is_expected_and_refuse_them_once_it_is_given_up()
    {
        var router = NewRouter();
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("before"), client.Ref));
        Assert.Equal(RefusalReason.NoModelReady, client.ExpectMsg<QueryRefused>().Reason); // nothing expected: refused at once

        router.Tell(new WorkersExpected("worker-process-1", null, true, "starting"));
        router.Tell(new SubmitQuery(Greedy("held"), client.Ref));
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        router.Tell(new WorkersExpected("worker-process-1", null, false, "worker process 1 ended before any worker was ready 5 times"));
        var refused = client.ExpectMsg<QueryRefused>();
        Assert.Equal("held", refused.QueryId);
        Assert.Equal(RefusalReason.NoModelReady, refused.Reason);
    }

    [Fact]
    public void Should_resume_the_query_of_a_dead_worker_process_on_its_restarted_worker_from_the_tokens_already_sent()
    {
        var router = NewRouter();
        var client = CreateTestProbe();
        var before = CreateTestProbe();
        router.Tell(new WorkersExpected("worker-process-1", Local, true, "starting"));
        router.Tell(new WorkerLoadPublished(before.Ref, Ready("worker-1")));
        router.Tell(new SubmitQuery(Greedy("q", maxNewTokens: 5, 11, 12), client.Ref));
        var run = before.ExpectMsg<RunQuery>();
        router.Tell(new QueryProgress(run.Ticket, new TokensGenerated("q", "ab", [1, 2], null)), before.Ref);
        Assert.Equal([1, 2], client.ExpectMsg<TokensGenerated>().TokenIds);

        // The process dies: its parent says it is coming back, then its node is lost.
        router.Tell(new WorkersExpected("worker-process-1", null, true, "worker process 1 (pid 7) killed by signal 9 (SIGKILL)"));
        router.Tell(new WorkerNodeLost(Local, "worker process 1 (pid 7) killed by signal 9 (SIGKILL)"));
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        var after = CreateTestProbe();
        router.Tell(new WorkersExpected("worker-process-1", Local, true, "starting"));
        router.Tell(new WorkerLoadPublished(after.Ref, Ready("worker-1")));
        var resumed = after.ExpectMsg<RunQuery>();
        Assert.Equal([1, 2], resumed.Request.GeneratedTokenIds);
        Assert.Equal("ab", resumed.Request.GeneratedText);
        router.Tell(new QueryProgress(resumed.Ticket, new TokensGenerated("q", "cde", [3, 4, 5], null)), after.Ref);
        router.Tell(new QueryProgress(resumed.Ticket, new QueryCompleted("q", FinishReason.Length, 2, 5, false, "node-a/worker-1")), after.Ref);
        Assert.Equal([3, 4, 5], client.ExpectMsg<TokensGenerated>().TokenIds);
        Assert.Equal(5, client.ExpectMsg<QueryCompleted>().CompletionTokens);
        Assert.Equal(1, RouterStatusOf(router).Counters!.Resumed);
    }
}
