using Akka.Actor;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.TestSupport;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// A step that never returns (a hung driver call): the worker's supervisor sees it through the step clock after the step
/// timeout, marks the worker Failed with the reason, and the router resumes its query on the other worker from the tokens
/// already sent; the answer equals an undisturbed run's.
/// </summary>
public sealed class HungStepSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    [Fact]
    public void Should_fail_a_worker_whose_step_hangs_past_the_step_timeout_and_resume_its_query_on_another_worker()
    {
        var hanging = new FaultInjectingEngineFactory(new FakeEngineFactory(), new FaultOptions { HangAtStep = 4 });
        var options = FastWorkers() with { StepTimeout = TimeSpan.FromMilliseconds(300) };
        var router = Sys.ActorOf(QueryRouter.Props("node-a", new RouterOptions(), new CacheOptions { Enabled = false }));
        router.Tell(new RegisterWorker(Sys.ActorOf(ModelSupervisor.Props("worker-1", "node-a", hanging, options))));
        AwaitCondition(() => RouterStatusOf(router).Workers.Count(w => w.State == WorkerState.Ready) == 1, TimeSpan.FromSeconds(10));
        try
        {
            var client = CreateTestProbe();
            router.Tell(new SubmitQuery(Greedy("q", 8, 11, 12), client.Ref));
            var first = client.ExpectMsg<TokensGenerated>(TimeSpan.FromSeconds(5));

            // Another worker joins while the first one's fourth step hangs.
            router.Tell(new RegisterWorker(Sys.ActorOf(ModelSupervisor.Props("worker-2", "node-a", new FakeEngineFactory(), options))));
            var tokens = new List<int>(first.TokenIds);
            QueryEvent e;
            do
            {
                e = client.ExpectMsg<QueryEvent>(TimeSpan.FromSeconds(10));
                if (e is TokensGenerated t) tokens.AddRange(t.TokenIds);
            } while (!e.IsTerminal);

            var done = Assert.IsType<QueryCompleted>(e);
            Assert.Equal(FakeEngine.GreedyAnswer([11, 12], 8), tokens);
            Assert.Equal("node-a/worker-2", done.Worker);
            var failed = RouterStatusOf(router).Workers.Single(w => w.Worker == "worker-1");
            Assert.Equal(WorkerState.Failed, failed.State);
            Assert.Contains("a step made no progress", failed.Error);
            Assert.Equal(1, RouterStatusOf(router).Counters!.Resumed);
        }
        finally { hanging.State.ReleaseHang(); }
    }
}
