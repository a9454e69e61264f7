using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Hosting;
using ActorQuery.TestSupport;
using ActorQuery.Contracts;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Hosting;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Inference.Engine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;
using AkkaCluster = Akka.Cluster.Cluster;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// Three nodes in one process: separate actor systems wired as the Host wires them (Akka.Hosting +
/// AddActorQueryNode), real Akka.Remote over TCP on 127.0.0.1 with random ports, message serialization
/// checks on, fake engines behind the workers. Node A is gateway and worker, B and C are workers.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterSpecs(ITestOutputHelper output) : IAsyncLifetime
{
    // Tests only: fast failure detection and a short split-brain stable-after, so that a lost node is seen in about
    // 3-4 s (generous: this machine is shared and busy) and downed two seconds later (production keeps Akka's defaults from hocon/cluster.hocon).
    // Serialization: every message between the nodes goes through real remoting, and strict serialization
    // (allow-unregistered-types = off, also set in hocon/cluster.hocon) makes any cross-node message without an explicit
    // binding fail instead of falling back to JSON. akka.actor.serialize-messages = on cannot be used on a cluster
    // node: Akka.NET's own cluster events (ReachabilityChanged) fail it (akkadotnet/akka.net#4120), which drops them
    // and breaks the split-brain resolver. SerializationSpecs runs a node's actors with it on instead.
    private const string FastCluster = """
        akka.loglevel = WARNING
        akka.actor.serialization-settings.allow-unregistered-types = off
        akka.cluster.failure-detector.heartbeat-interval = 500ms
        akka.cluster.failure-detector.acceptable-heartbeat-pause = 3s
        akka.cluster.split-brain-resolver.stable-after = 2s
        akka.cluster.gossip-interval = 200ms
        akka.cluster.leader-actions-interval = 200ms
        akka.cluster.unreachable-nodes-reaper-interval = 200ms
        akka.cluster.pub-sub.gossip-interval = 200ms
        akka.remote.retry-gate-closed-for = 200ms
        akka.coordinated-shutdown.default-phase-timeout = 2s
        """;

    // A crash, not a leave: terminating the actor system skips coordinated shutdown, so the node never says goodbye.
    private const string Crashable = "akka.coordinated-shutdown.run-by-actor-system-terminate = off";

    private sealed class QuietMemory : Memory.IMemoryReader
    {
        public Memory.MemoryReading Read() => new(100, 10);
        public long MachineBytes => 1_000_000;
    }

    private sealed class Node(string name, IHost host, FakeEngineFactory engines)
    {
        public string Name { get; } = name;
        public IHost Host { get; } = host;
        public FakeEngineFactory Engines { get; } = engines;
        public ActorSystem System => Host.Services.GetRequiredService<ActorSystem>();
        public Address Address => AkkaCluster.Get(System).SelfAddress;
    }

    /// <summary>Every event each query got, in order (the reply-to of all submitted queries).</summary>
    private sealed class Recorder : ReceiveActor
    {
        public Recorder(ConcurrentDictionary<string, ConcurrentQueue<QueryEvent>> events) =>
            Receive<QueryEvent>(e => events.GetOrAdd(e.QueryId, _ => new()).Enqueue(e));
    }

    private readonly List<IHost> _hosts = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<QueryEvent>> _events = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var h in _hosts.AsEnumerable().Reverse())
        {
            try { await h.StopAsync(TimeSpan.FromSeconds(5)); } catch (Exception e) { output.WriteLine($"stop: {e.Message}"); }
            h.Dispose();
        }
    }

    private async Task<Node> Start(string name, string[] roles, int port, string? seed, bool crashable = false, int kvCapacity = 4096)
    {
        var engines = new FakeEngineFactory(kvCapacity: kvCapacity, tokenizer: new LetterTokenizer());
        var options = new ActorQueryNodeOptions
        {
            Node = name,
            Router = new RouterOptions { MaxInFlight = 64, MaxQueue = 256, DefaultTimeout = TimeSpan.FromSeconds(20) },
            Workers = new WorkerOptions { Count = 1, MaxBatch = 8 },
            Watchdog = new WatchdogOptions { Enabled = false },
            Faults = new FaultOptions { StepDelayMs = 5 },
        };
        var cluster = new ClusterNodeOptions
        {
            Roles = roles,
            Port = port,
            SeedNodes = seed is null ? [] : [seed],
            LoadPublishInterval = TimeSpan.FromMilliseconds(50),
            HeartbeatInterval = TimeSpan.FromMilliseconds(300),
        };
        var host = new HostBuilder()
            .ConfigureServices(services => services.AddAkka("actorquery", (akka, _) =>
            {
                akka.AddHocon(FastCluster + (crashable ? "\n" + Crashable : ""), HoconAddMode.Prepend);
                akka.AddActorQueryNode(RepoHocon.Node, options, cluster, _ => FaultInjectingEngineFactory.Wrap(engines, options.Faults), new QuietMemory());
            }))
            .Build();
        _hosts.Add(host);
        await host.StartAsync();
        return new Node(name, host, engines);
    }

    private static IActorRef RouterOf(Node node) => node.Host.Services.GetRequiredService<ActorRegistry>().Get<QueryRouter>();

    private static Task<RouterStatus> WaitForReadyWorkers(Node gateway, int count, TimeSpan within) =>
        Eventually.Until(() => RouterOf(gateway).Ask<RouterStatus>(GetStatus.Instance, TimeSpan.FromSeconds(5)),
            status => status.Workers.Count(w => w.State == WorkerState.Ready) == count, within, $"the gateway to see {count} ready workers",
            status => string.Join(", ", status.Workers.Select(w => $"{w.Node}/{w.Worker}:{w.State}")), interval: TimeSpan.FromMilliseconds(50));

    /// <summary>Query <paramref name="index"/> has prompt [index, 1, 2], so that each node's engine log says which queries it ran.</summary>
    private static QueryRequest Query(string id, int index, int maxNewTokens) => new()
    {
        QueryId = id,
        PromptTokenIds = [index, 1, 2],
        Sampling = SamplingParams.Greedy(maxNewTokens),
        Timeout = TimeSpan.FromSeconds(20),
    };

    private void Submit(Node gateway, IActorRef recorder, string prefix, int first, int count, int maxNewTokens)
    {
        var router = RouterOf(gateway);
        for (int i = first; i < first + count; i++) router.Tell(new SubmitQuery(Query($"{prefix}-{i}", i, maxNewTokens), recorder));
    }

    private async Task<List<QueryEvent>> Terminals(string prefix, int first, int count, TimeSpan within)
    {
        var ids = Enumerable.Range(first, count).Select(i => $"{prefix}-{i}").ToList();
        List<string> Missing() => ids.Where(id => !_events.TryGetValue(id, out var q) || !q.Any(e => e.IsTerminal)).ToList();
        await Eventually.Until(() => Missing().Count == 0, within, $"a terminal event for each of the {count} {prefix} queries",
            () => $"{Missing().Count} got none: {string.Join(", ", Missing().Take(10))}", interval: TimeSpan.FromMilliseconds(50));
        // Not a wait for something to happen but a quiet window, as ExpectNoMsg: a second terminal event, if any, would arrive in it.
        await Task.Delay(300);
        var missing = Missing();
        Assert.True(missing.Count == 0, $"{missing.Count} queries got no terminal event: {string.Join(", ", missing.Take(10))}");
        foreach (var id in ids)
        {
            var events = _events[id].ToList();
            Assert.True(events.Count(e => e.IsTerminal) == 1, $"{id} got {events.Count(e => e.IsTerminal)} terminal events");
            Assert.True(events[^1].IsTerminal, $"{id}: an event arrived after its terminal event");
        }
        return ids.Select(id => _events[id].Single(e => e.IsTerminal)).ToList();
    }

    /// <summary>
    /// Like a killed process: the node's network goes first (its sockets close, as the kernel closes a dead process's),
    /// so that nothing it does afterwards (actors stopping, queries handed back) reaches anyone; then its actor system
    /// stops without coordinated shutdown, so it never leaves the cluster. The others learn only from their failure
    /// detectors.
    /// </summary>
    private static async Task Crash(Node node)
    {
        var provider = (Akka.Remote.RemoteActorRefProvider)((ExtendedActorSystem)node.System).Provider;
        await provider.Transport.Shutdown();
        await node.System.Terminate();
    }

    private static int Served(Node node, int first, int count) =>
        node.Engines.Log.AddedPrompts.Count(p => p >= first && p < first + count);

    /// <summary>Whether a query that <paramref name="node"/> admitted has streamed tokens back to the recorder.</summary>
    private bool StreamedFrom(Node node, string prefix, int first, int count) =>
        node.Engines.Log.AddedPrompts.Any(p => p >= first && p < first + count
            && _events.TryGetValue($"{prefix}-{p}", out var q) && q.Any(e => e is TokensGenerated));

    [Fact]
    public async Task Should_run_a_prompt_larger_than_remotings_default_frame_on_a_remote_worker()
    {
        var a = await Start("node-a", ["gateway"], 0, seed: null);
        var b = await Start("node-b", ["worker"], 0, a.Address.ToString(), kvCapacity: 70_000);
        await WaitForReadyWorkers(a, 1, TimeSpan.FromSeconds(20));
        var recorder = a.System.ActorOf(Akka.Actor.Props.Create(() => new Recorder(_events)), "recorder");

        // 60,000 token ids of a 150k vocabulary take 3 bytes each on the wire: ~180 KB, over Akka's default 128,000-byte frame.
        var prompt = Enumerable.Range(0, 60_000).Select(i => 100_000 + i % 50_000).ToArray();
        RouterOf(a).Tell(new SubmitQuery(new QueryRequest
        {
            QueryId = "big-0", PromptTokenIds = prompt, Sampling = SamplingParams.Greedy(4), Timeout = TimeSpan.FromSeconds(20),
        }, recorder));

        var terminal = (await Terminals("big", 0, 1, TimeSpan.FromSeconds(25))).Single();
        Assert.True(terminal is QueryCompleted, terminal.ToString());
        Assert.Single(b.Engines.Log.AddedPrompts); // it ran on the remote worker
        Assert.Equal("node-b/worker-1", ((QueryCompleted)terminal).Worker); // and the answer names the node that served it
        Assert.Equal(FakeEngine.GreedyAnswer(prompt, 4), _events["big-0"].OfType<TokensGenerated>().SelectMany(t => t.TokenIds));
    }

    [Fact]
    public async Task Should_spread_queries_over_every_node_and_survive_losing_one_mid_load_then_use_it_again_after_restart()
    {
        var a = await Start("node-a", ["gateway", "worker"], 0, seed: null);
        var seed = a.Address.ToString();
        var b = await Start("node-b", ["worker"], 0, seed);
        var c = await Start("node-c", ["worker"], 0, seed, crashable: true);
        int cPort = c.Address.Port!.Value;
        await WaitForReadyWorkers(a, 3, TimeSpan.FromSeconds(20));
        var recorder = a.System.ActorOf(Akka.Actor.Props.Create(() => new Recorder(_events)), "recorder");

        // 1. Load spreads: 60 queries through gateway A, each node's worker takes at least 20% of them.
        Submit(a, recorder, "spread", 1000, 60, maxNewTokens: 12);
        var spread = await Terminals("spread", 1000, 60, TimeSpan.FromSeconds(20));
        Assert.All(spread, t => Assert.IsType<QueryCompleted>(t));
        var shares = new[] { a, b, c }.Select(n => (n.Name, Count: Served(n, 1000, 60))).ToList();
        output.WriteLine("served: " + string.Join(", ", shares.Select(s => $"{s.Name} {s.Count}")));
        Assert.Equal(60, shares.Sum(s => s.Count));
        Assert.All(shares, s => Assert.True(s.Count >= 12, $"{s.Name} served {s.Count} of 60 (< 20%)"));
        // Tokens of queries served on B and C streamed back through A, token by token.
        var sample = _events["spread-1000"].OfType<TokensGenerated>().SelectMany(t => t.TokenIds).ToList();
        Assert.Equal(FakeEngine.GreedyAnswer([1000, 1, 2], 12), sample);

        // 2. Node C dies mid-load (no leave): its queries resume on A and B from the tokens already streamed, and every
        //    query completes with the undisturbed answer (no gap, no duplicate), well before its 20 s deadline.
        Submit(a, recorder, "crash", 2000, 45, maxNewTokens: 60);
        await Eventually.Until(() => StreamedFrom(c, "crash", 2000, 45), TimeSpan.FromSeconds(10),
            "tokens of a second-load query on node C to stream back through A");
        Assert.True(Served(c, 2000, 45) > 0, "node C got none of the second load");
        var crashedAt = DateTime.UtcNow;
        await Crash(c);
        var crash = await Terminals("crash", 2000, 45, TimeSpan.FromSeconds(15));
        var took = DateTime.UtcNow - crashedAt;
        output.WriteLine($"after the crash: {crash.Count(t => t is QueryCompleted)} completed in {took.TotalSeconds:0.0}s; "
                         + crash.OfType<QueryFailed>().FirstOrDefault()?.Reason);
        Assert.All(crash, t => Assert.True(t is QueryCompleted, $"{t.QueryId}: {t}"));
        for (int i = 2000; i < 2045; i++)
            Assert.Equal(FakeEngine.GreedyAnswer([i, 1, 2], 60), _events[$"crash-{i}"].OfType<TokensGenerated>().SelectMany(t => t.TokenIds));
        Assert.True(took < TimeSpan.FromSeconds(15));
        var status = await WaitForReadyWorkers(a, 2, TimeSpan.FromSeconds(5));
        Assert.True(status.Counters!.Resumed > 0, "no query streaming from node C was resumed elsewhere");

        // 3. The rest keeps serving.
        Submit(a, recorder, "after", 3000, 20, maxNewTokens: 8);
        Assert.All(await Terminals("after", 3000, 20, TimeSpan.FromSeconds(15)), t => Assert.IsType<QueryCompleted>(t));
        Assert.Equal(0, Served(c, 3000, 20));

        // 4. C restarts at the same address (a new incarnation), rejoins, and gets work again.
        var c2 = await Start("node-c", ["worker"], cPort, seed);
        await WaitForReadyWorkers(a, 3, TimeSpan.FromSeconds(25));
        Submit(a, recorder, "rejoined", 4000, 30, maxNewTokens: 12);
        Assert.All(await Terminals("rejoined", 4000, 30, TimeSpan.FromSeconds(15)), t => Assert.IsType<QueryCompleted>(t));
        output.WriteLine($"after the restart C served {Served(c2, 4000, 30)} of 30");
        Assert.True(Served(c2, 4000, 30) >= 6, $"the restarted node served {Served(c2, 4000, 30)} of 30");
    }
}

/// <summary>
/// The cluster spec runs alone: three actor systems with failure detectors on a shared two-core machine must not
/// compete with the timing-sensitive worker specs, nor they with it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection
{
    public const string Name = "Cluster (not in parallel)";
}
