using Akka.Configuration;
using ActorQuery.Contracts;
using ActorQuery.Actors.Hosting;
using ActorQuery.Inference.Engine;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests.Support;

/// <summary>TestKit with the node's HOCON (pinned model dispatcher) and quiet logs.</summary>
public abstract class ActorSpec(string? extraHocon, ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(Configure(extraHocon), output: output)
{
    public const string VirtualTime = "akka.scheduler.implementation = \"Akka.TestKit.TestScheduler, Akka.TestKit\"";

    private static Config Configure(string? extra) =>
        ConfigurationFactory.ParseString((extra ?? "") + "\nakka.loglevel = WARNING\nakka.test.timefactor = 1")
            .WithFallback(RepoHocon.Actors);

    protected static QueryRequest Greedy(string id, int maxNewTokens = 4, params int[] prompt) => new()
    {
        QueryId = id,
        PromptTokenIds = prompt.Length > 0 ? prompt : new[] { 5, 6, 7 },
        Sampling = SamplingParams.Greedy(maxNewTokens),
    };

    protected static RouterStatus RouterStatusOf(Akka.Actor.IActorRef router) =>
        Akka.Actor.Futures.Ask<RouterStatus>(router, GetStatus.Instance, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();

    protected static WorkerOptions FastWorkers(int maxBatch = 8) => new()
    {
        MaxBatch = maxBatch,
        BackoffMin = TimeSpan.FromMilliseconds(1),
        BackoffMax = TimeSpan.FromMilliseconds(20),
        BackoffJitter = 0.2,
    };
}
