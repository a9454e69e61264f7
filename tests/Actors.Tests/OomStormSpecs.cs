using Akka.Actor;
using ActorQuery.Contracts;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using ActorQuery.Inference.Engine;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// Property: whatever the fault schedule, every one of 200 queries gets exactly one terminal event, nothing
/// follows it, every completed answer is the fault-free greedy answer, and the node serves afterwards.
/// Each seed draws a schedule (OOM every N steps, maybe crashes, batch, workers, limits) and a workload.
/// </summary>
public sealed class OomStormSpecs : ActorSpec
{
    private readonly ITestOutputHelper _output;

    public OomStormSpecs(ITestOutputHelper output) : base(null, output) => _output = output;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Should_give_every_query_exactly_one_terminal_reply_through_an_out_of_memory_storm(int seed)
    {
        var rng = new Random(seed);
        var faults = new FaultOptions
        {
            OomEveryNthStep = rng.Next(6, 20),
            CrashEveryNthStep = rng.Next(2) == 0 ? 0 : rng.Next(13, 40),
        };
        int workerCount = rng.Next(1, 3);
        var workers = FastWorkers(maxBatch: rng.Next(1, 9)) with { DegradeAfterOoms = rng.Next(2, 6) };
        var routerOptions = new RouterOptions { MaxInFlight = rng.Next(2, 17), MaxQueue = 200 };
        var schedule = $"seed {seed}: {faults}, {workerCount} worker(s), batch {workers.MaxBatch}, in flight {routerOptions.MaxInFlight}";
        _output.WriteLine(schedule);

        var router = Sys.ActorOf(QueryRouter.Props("node-a", routerOptions, new CacheOptions { Enabled = false }));
        var factories = Enumerable.Range(0, workerCount)
            .Select(_ => new FaultInjectingEngineFactory(new FakeEngineFactory(), faults)).ToList();
        for (int i = 0; i < workerCount; i++)
            router.Tell(new RegisterWorker(Sys.ActorOf(ModelSupervisor.Props($"worker-{i + 1}", "node-a", factories[i], workers))));

        var client = CreateTestProbe();
        var requests = Enumerable.Range(0, 200).Select(i => Greedy($"q{i}", rng.Next(1, 7),
            Enumerable.Range(0, rng.Next(1, 6)).Select(_ => rng.Next(1, 900)).ToArray())).ToDictionary(r => r.QueryId);
        foreach (var r in requests.Values) router.Tell(new SubmitQuery(r, client.Ref));

        var events = requests.Keys.ToDictionary(id => id, _ => new List<QueryEvent>());
        int terminals = 0;
        while (terminals < requests.Count)
        {
            var e = client.ExpectMsg<QueryEvent>(TimeSpan.FromSeconds(20), schedule);
            events[e.QueryId].Add(e);
            if (e.IsTerminal) terminals++;
        }
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // nothing answered twice, nothing after the end

        foreach (var (id, list) in events)
        {
            Assert.True(list.Count(e => e.IsTerminal) == 1, $"{id}: {string.Join(", ", list)} ({schedule})");
            Assert.True(list[^1].IsTerminal, $"{id}: events after its terminal one ({schedule})");
            var tokens = list.OfType<TokensGenerated>().SelectMany(t => t.TokenIds).ToArray();
            switch (list[^1])
            {
                case QueryCompleted:
                    var r = requests[id];
                    Assert.Equal(FakeEngine.GreedyAnswer(r.PromptTokenIds, r.Sampling.MaxNewTokens), tokens);
                    break;
                case QueryFailed f:
                    Assert.False(string.IsNullOrWhiteSpace(f.Reason));
                    break;
                default:
                    Assert.Fail($"{id}: unexpected end {list[^1]} ({schedule})");
                    break;
            }
        }
        Assert.True(factories.Sum(f => f.State.InjectedOoms) > 0, "the schedule injected no fault");

        // The node is ready afterwards and still answers correctly.
        AwaitCondition(() => RouterStatusOf(router).AnyWorkerReady, TimeSpan.FromSeconds(10));
        var status = RouterStatusOf(router);
        Assert.Equal((0, 0), (status.InFlight, status.Queued));
        _output.WriteLine($"completed {status.Counters!.Completed}, failed {status.Counters.Failed}, retried {status.Counters.Retried}, " +
                         $"restarts {status.Workers.Sum(w => w.Restarts)}, OOMs {status.Workers.Sum(w => w.OomCount)}, degrade levels {string.Join("/", status.Workers.Select(w => w.DegradeLevel))}");
        Assert.True(status.Counters.Completed > 0);
    }
}
