using Akka.Actor;
using Akka.TestKit;
using ActorQuery.Contracts;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using ActorQuery.Inference.Engine;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>A router with real local workers (ModelSupervisor + ModelActor on pinned threads) over fake engines.</summary>
public sealed class NodeSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    private IActorRef StartNode(RouterOptions router, WorkerOptions workers, params IEngineFactory[] engines)
    {
        var r = Sys.ActorOf(QueryRouter.Props("node-a", router, new CacheOptions()));
        for (int i = 0; i < engines.Length; i++)
            r.Tell(new RegisterWorker(Sys.ActorOf(ModelSupervisor.Props($"worker-{i + 1}", "node-a", engines[i], workers))));
        AwaitCondition(() => RouterStatusOf(r).Workers.Count(w => w.State == WorkerState.Ready) == engines.Length, TimeSpan.FromSeconds(10));
        return r;
    }

    private static List<QueryEvent> Run(IActorRef router, TestProbe client, QueryRequest request)
    {
        router.Tell(new SubmitQuery(request, client.Ref));
        var events = new List<QueryEvent>();
        do events.Add(client.ExpectMsg<QueryEvent>(TimeSpan.FromSeconds(10)));
        while (!events[^1].IsTerminal);
        return events;
    }

    private static int[] Tokens(IEnumerable<QueryEvent> events) => events.OfType<TokensGenerated>().SelectMany(t => t.TokenIds).ToArray();

    [Fact]
    public void Should_retry_a_query_whose_first_step_ran_out_of_memory_and_complete_with_the_fault_free_greedy_answer()
    {
        var engines = new FakeEngineFactory();
        var faulty = new FaultInjectingEngineFactory(engines, new FaultOptions { OomAtSteps = new[] { 1 } });
        var router = StartNode(new RouterOptions(), FastWorkers(), faulty);
        var client = CreateTestProbe();

        var events = Run(router, client, Greedy("q", 8, 11, 12, 13));

        Assert.Equal(FakeEngine.GreedyAnswer(new[] { 11, 12, 13 }, 8), Tokens(events));
        Assert.IsType<QueryCompleted>(events[^1]);
        Assert.Equal(1, faulty.State.InjectedOoms);
        var status = RouterStatusOf(router);
        Assert.Equal((1, 1), (status.Workers[0].Restarts, status.Workers[0].OomCount));
        Assert.Equal(1, status.Counters!.Retried);
        Assert.Equal(2, engines.Log.Loads);
    }

    [Fact]
    public void Should_answer_a_repeated_deterministic_query_from_the_cache_without_a_model_step()
    {
        var engines = new FakeEngineFactory(tokenizer: new LetterTokenizer());
        var router = StartNode(new RouterOptions(), FastWorkers(), engines);
        var client = CreateTestProbe();

        var first = Run(router, client, Greedy("q1", 6));
        int steps = engines.Log.Steps;
        var second = Run(router, client, Greedy("q2", 6));

        Assert.Equal(steps, engines.Log.Steps); // no model step for the repeat
        Assert.Equal(Tokens(first), Tokens(second));
        Assert.Equal(string.Concat(first.OfType<TokensGenerated>().Select(t => t.Text)),
            Assert.Single(second.OfType<TokensGenerated>()).Text);
        var done = Assert.IsType<QueryCompleted>(second[^1]);
        Assert.True(done.Cached);
        Assert.Equal(("q2", 6), (done.QueryId, done.CompletionTokens));
        Assert.Equal((1L, 1L), (RouterStatusOf(router).Cache.Hits, RouterStatusOf(router).Cache.Entries));

        var sampled = Run(router, client, Greedy("q3", 6) with { Sampling = new SamplingParams { Temperature = 0.7f, MaxNewTokens = 6 } });
        Assert.False(Assert.IsType<QueryCompleted>(sampled[^1]).Cached); // not deterministic: never from the cache
    }

    [Fact]
    public void Should_spread_concurrent_queries_over_two_local_workers_by_their_load()
    {
        var a = new FaultInjectingEngineFactory(new FakeEngineFactory(), new FaultOptions { StepDelayMs = 5 });
        var b = new FaultInjectingEngineFactory(new FakeEngineFactory(), new FaultOptions { StepDelayMs = 5 });
        var router = StartNode(new RouterOptions(), FastWorkers(), a, b);
        var client = CreateTestProbe();

        for (int i = 0; i < 6; i++)
            router.Tell(new SubmitQuery(Greedy($"q{i}", 20, 1, i) with { Sampling = new SamplingParams { Temperature = 1, MaxNewTokens = 20 } }, client.Ref));
        var done = client.ReceiveWhile(TimeSpan.FromSeconds(20), m => m, msgs: 6 * 21).OfType<QueryCompleted>().ToList();

        Assert.Equal(6, done.Count);
        Assert.Equal(new[] { ("node-a/worker-1", 3), ("node-a/worker-2", 3) },
            done.GroupBy(d => d.Worker).Select(g => (g.Key, g.Count())).OrderBy(g => g.Key));
    }

    [Fact]
    public void Should_report_the_node_not_ready_and_refuse_no_model_ready_when_the_only_model_cannot_load()
    {
        var broken = new FakeEngineFactory(loadFault: _ => new InvalidDataException("config.json: hidden_size is missing"));
        var router = Sys.ActorOf(QueryRouter.Props("node-a", new RouterOptions(), new CacheOptions()));
        router.Tell(new RegisterWorker(Sys.ActorOf(ModelSupervisor.Props("worker-1", "node-a", broken, FastWorkers()))));
        AwaitCondition(() => RouterStatusOf(router).Workers is [{ State: WorkerState.Failed }], TimeSpan.FromSeconds(10));
        var client = CreateTestProbe();

        router.Tell(new SubmitQuery(Greedy("q"), client.Ref));

        var refused = client.ExpectMsg<QueryRefused>();
        Assert.Equal(RefusalReason.NoModelReady, refused.Reason);
        Assert.Contains("hidden_size is missing", refused.Message);
        var status = RouterStatusOf(router);
        Assert.False(status.AnyWorkerReady);
        // Tried again after the backoff, then given up: no crash loop.
        Assert.Equal((0, new WorkerOptions().MaxLoadAttempts), (status.Workers[0].Restarts, status.Workers[0].LoadAttempts));
    }
}
