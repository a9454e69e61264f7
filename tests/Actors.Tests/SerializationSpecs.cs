using System.Text.Json;
using Akka.Actor;
using Akka.Configuration;
using ActorQuery.Contracts;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Hosting;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization.Grammar;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// The wire format of cross-node messages: every message bound to <see cref="ActorQuerySerializer"/> in
/// hocon/cluster.hocon goes through it and comes back equal; and a node's own actors run a query with
/// akka.actor.serialize-messages = on (every message that is not marked node-local is serialized and read back).
/// </summary>
public sealed class SerializationSpecs(ITestOutputHelper output) : ActorSpec(
    "akka.actor.serialize-messages = on\n" + RepoHocon.Cluster.ToString(includeFallback: false), output)
{
    private static readonly SamplingParams Sampling = new()
    {
        Temperature = 0.7f, TopK = 40, TopP = 0.9f, MinP = 0.05f, RepetitionPenalty = 1.1f, PresencePenalty = -0.5f,
        FrequencyPenalty = 1.5f, Seed = -42, MaxNewTokens = 300, MinNewTokens = 3, IgnoreEos = true,
        StopTokenIds = [0, 151645], Logprobs = true, TopLogprobs = 5,
    };

    private static readonly QueryRequest Request = new()
    {
        QueryId = "q-ü-1", PromptTokenIds = [1, 0, 151643, 70000], Sampling = Sampling,
        StopStrings = ["\n\n", "Ende—"], Timeout = TimeSpan.FromMilliseconds(1500), Model = "qwen2.5-0.5b", SkipSpecialTokens = false, Buffered = true,
    };

    private static readonly WorkerStatus Status = new()
    {
        Worker = "worker-2", Node = "node-b", State = WorkerState.Restarting, Model = "default",
        Running = 3, Queued = 7, KvFreeTokens = 1234, KvCapacityTokens = 65536, Restarts = 2, OomCount = 1,
        LastOom = new DateTimeOffset(2026, 11, 27, 17, 0, 1, TimeSpan.FromHours(2)), Degraded = true, DegradedReason = "half KV",
        Error = null, Preemptions = 4, DegradeLevel = 1, TensorBytes = 5_000_000_000, Device = "cuda", MaxBatch = 8, Crashes = 1, LoadAttempts = 2,
    };

    public static TheoryData<string> Messages() => new(Samples(null!).Keys);

    /// <summary>One of every message the cluster binding covers, including each query event and the optional fields.</summary>
    private static Dictionary<string, object> Samples(IActorRef someActor) => new()
    {
        ["RunQuery"] = new RunQuery(long.MaxValue, Request),
        ["RunQuery (resumed)"] = new RunQuery(3, Request with { GeneratedTokenIds = [7, 151643, 0], GeneratedText = "héllo \n" }),
        ["RunQuery (json_schema)"] = new RunQuery(4, Request with { Sampling = Sampling with { Constraint = new(ConstraintKind.JsonSchema, "{\"type\":\"object\",\"properties\":{\"é\":{\"const\":\"—\"}}}") } }),
        ["RunQuery (json_object, resumed)"] = new RunQuery(5, Request with { Sampling = Sampling with { Constraint = OutputConstraint.JsonObject }, GeneratedTokenIds = [90] }),
        ["RunQuery (regex)"] = new RunQuery(6, Request with { Sampling = Sampling with { Constraint = new(ConstraintKind.Regex, "[0-9]{3}\\d") } }),
        ["RunQuery (choices)"] = new RunQuery(7, Request with { Sampling = Sampling with { Constraint = OutputConstraint.Choices(["東京", "Paris"]) } }),
        ["RunQuery (logit_bias, regex)"] = new RunQuery(8, Request with { Sampling = Sampling with
            { Constraint = new(ConstraintKind.Regex, "[a-z]+"), LogitBias = new Dictionary<int, float> { [0] = -100f, [151643] = 100f, [42] = 0.5f } } }),
        ["RunQuery (defaults)"] = new RunQuery(1, new QueryRequest { QueryId = "d", PromptTokenIds = [5], Sampling = SamplingParams.Greedy(4) }),
        ["CancelRun"] = new CancelRun(77),
        ["QueryReturned"] = new QueryReturned(78, "worker worker-1 is restarting", 3),
        ["QueryProgress(TokensGenerated)"] = new QueryProgress(9, new TokensGenerated("q", "héllo", [15339], null)),
        ["QueryProgress(TokensGenerated, logprobs)"] = new QueryProgress(9, new TokensGenerated("q", "", [1, 2],
            [new TokenLogprob(1, -0.25f, [new TopLogprob(1, -0.25f), new TopLogprob(7, -2.5f)]), new TokenLogprob(2, -1f, [])])),
        ["QueryProgress(QueryCompleted)"] = new QueryProgress(10, new QueryCompleted("q", FinishReason.Stop, 12, 30, Cached: true, "worker-1")),
        ["QueryProgress(QueryRefused)"] = new QueryProgress(11, new QueryRefused("q", RefusalReason.TooLarge, "needs 9000", TimeSpan.FromSeconds(3))),
        ["QueryProgress(QueryRefused, no retry)"] = new QueryProgress(11, new QueryRefused("q", RefusalReason.InvalidRequest, "top_p", null)),
        ["QueryProgress(QueryFailed)"] = new QueryProgress(12, new QueryFailed("q", "node lost")),
        ["QueryProgress(QueryTimedOut)"] = new QueryProgress(13, new QueryTimedOut("q", TimeSpan.FromSeconds(120))),
        ["QueryProgress(QueryCancelled)"] = new QueryProgress(14, new QueryCancelled("q")),
        ["QueryCompleted"] = new QueryCompleted("q", FinishReason.Length, 1, 2, Cached: false, "w"),
        ["QueryCompleted (prefix cached)"] = new QueryCompleted("q", FinishReason.Stop, 1200, 2, Cached: false, "w", CachedPromptTokens: 1184),
        ["QueryFailed"] = new QueryFailed("q", "why"),
        ["WorkerStatus"] = Status,
        ["WorkerStatus (loading)"] = new WorkerStatus { Worker = "worker-1", Node = "n", State = WorkerState.Loading, Error = "e" },
        ["WorkerLoadPublished"] = new WorkerLoadPublished(someActor, Status),
        ["SubscribeWorkerStatus"] = new SubscribeWorkerStatus(someActor),
        ["GetWorkerStatus"] = GetWorkerStatus.Instance,
        ["DrainWorker"] = DrainWorker.Instance,
        ["ModelActivity"] = new ActorQuery.Actors.Workers.ModelActivity("qwen-ü", 3, TimeSpan.FromMinutes(5)),
        ["ModelActivity (forever, none live)"] = new ActorQuery.Actors.Workers.ModelActivity("m", 0, Timeout.InfiniteTimeSpan),
        ["ModelActivity (the model's keep-alive)"] = new ActorQuery.Actors.Workers.ModelActivity("m", 1, null),
        ["ModelUnavailable"] = new ActorQuery.Actors.Workers.ModelUnavailable("m", "no room for model 'm'", TimeSpan.FromSeconds(10)),
        ["ModelUnavailable (no retry)"] = new ActorQuery.Actors.Workers.ModelUnavailable("m", "failed to load", null),
        ["ModelCatalogPublished"] = new ActorQuery.Actors.Workers.ModelCatalogPublished(someActor, ["x", "y-7b"]),
        ["CleanupWorker"] = CleanupWorker.Instance,
        ["WorkerCleanedUp"] = new WorkerCleanedUp("worker-2", "node-b", 31337, "restarting", 9_000_000_000, 8_000_000_000, 5_000_000, 1_000),
        ["ArmFaults"] = new ArmFaults(new LiveFaults { LeakBytesPerStep = 64L << 20, StepDelayMs = 25, OomEveryNthStep = 40, CrashEveryNthStep = 7, HangAtStep = 1_000_000 }),
        ["ArmFaults (none)"] = new ArmFaults(LiveFaults.None),
        ["GetFaults"] = GetFaults.Instance,
        ["FaultsReported"] = new FaultsReported("worker-3", "node-b", 77, new LiveFaults { LeakBytesPerStep = 1, HangAtStep = 12 }, 1L << 40, 3L << 30),
        ["FaultsReported (no fault control)"] = new FaultsReported("worker-3", "node-b", 77, null, 0, 0),
    };

    [Theory]
    [MemberData(nameof(Messages))]
    public void Should_send_every_cross_node_message_through_the_binary_serializer_and_read_it_back_equal(string name)
    {
        var actor = CreateTestProbe().Ref;
        var message = Samples(actor)[name];
        var serializer = Sys.Serialization.FindSerializerFor(message);
        Assert.IsType<ActorQuerySerializer>(serializer);

        var bytes = serializer.ToBinary(message);
        var manifest = ((Akka.Serialization.SerializerWithStringManifest)serializer).Manifest(message);
        var back = Sys.Serialization.Deserialize(bytes, serializer.Identifier, manifest);

        Assert.Equal(message.GetType(), back.GetType());
        switch (message)
        {
            case WorkerLoadPublished p:
                var q = (WorkerLoadPublished)back;
                Assert.Equal(p.Worker, q.Worker);
                Assert.Equal(p.Status, q.Status);
                break;
            case ActorQuery.Actors.Workers.ModelCatalogPublished c:
                var d = (ActorQuery.Actors.Workers.ModelCatalogPublished)back;
                Assert.Equal(c.Pool, d.Pool);
                Assert.Equal(c.Models, d.Models);
                break;
            case SubscribeWorkerStatus s:
                Assert.Equal(s.Subscriber, ((SubscribeWorkerStatus)back).Subscriber);
                break;
            default:
                // Records with lists compare their lists by reference; their JSON compares them by content.
                Assert.Equal(Json(message), Json(back));
                break;
        }
    }

    [Fact]
    public void Should_keep_a_one_token_event_small_on_the_wire()
    {
        var message = new QueryProgress(123456, new TokensGenerated("chatcmpl-5f0c2a9e", " the", [279], null));
        var bytes = Sys.Serialization.FindSerializerFor(message).ToBinary(message);
        Output?.WriteLine($"one token: {bytes.Length} bytes");
        Assert.True(bytes.Length < 40, $"{bytes.Length} bytes for one token");
    }

    [Fact]
    public void Should_run_a_query_end_to_end_with_every_message_serialized()
    {
        var engines = new FakeEngineFactory(tokenizer: new LetterTokenizer());
        var router = Sys.ActorOf(QueryRouter.Props("node-a", new RouterOptions(), new CacheOptions { Enabled = false }));
        router.Tell(new RegisterWorker(Sys.ActorOf(ModelSupervisor.Props("worker-1", "node-a", engines, FastWorkers()))));
        AwaitCondition(() => RouterStatusOf(router).AnyWorkerReady, TimeSpan.FromSeconds(10));
        var client = CreateTestProbe();

        router.Tell(new SubmitQuery(Greedy("q", 6, 3, 4), client.Ref));
        var events = new List<QueryEvent>();
        do events.Add(client.ExpectMsg<QueryEvent>(TimeSpan.FromSeconds(10)));
        while (!events[^1].IsTerminal);

        var expected = FakeEngine.GreedyAnswer([3, 4], 6);
        Assert.Equal(expected, events.OfType<TokensGenerated>().SelectMany(t => t.TokenIds));
        Assert.Equal(LetterTokenizer.TextOf(expected), string.Concat(events.OfType<TokensGenerated>().Select(t => t.Text)));
        Assert.IsType<QueryCompleted>(events[^1]);
    }

    private static string Json(object o) => JsonSerializer.Serialize(o, o.GetType());
}
