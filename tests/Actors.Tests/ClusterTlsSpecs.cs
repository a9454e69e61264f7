using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Event;
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
/// Cluster TLS with mutual authentication over real Akka.Remote on 127.0.0.1: nodes wired as the Host wires them
/// (AddActorQueryNode with <see cref="ClusterNodeOptions.Tls"/>), certificates made in the test by
/// <see cref="TestCertificates"/>. Each node's Akka log (warnings and errors) is kept, to check what it says.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterTlsSpecs(ITestOutputHelper output) : IAsyncLifetime
{
    private const string FastCluster = """
        akka.loglevel = WARNING
        akka.cluster.failure-detector.heartbeat-interval = 500ms
        akka.cluster.failure-detector.acceptable-heartbeat-pause = 3s
        akka.cluster.gossip-interval = 200ms
        akka.cluster.leader-actions-interval = 200ms
        akka.cluster.seed-node-timeout = 1s
        akka.cluster.retry-unsuccessful-join-after = 1s
        akka.remote.retry-gate-closed-for = 200ms
        akka.coordinated-shutdown.default-phase-timeout = 2s
        """;

    /// <summary>What each actor system logged at warning and above, by system.</summary>
    private static readonly ConcurrentDictionary<ActorSystem, ConcurrentQueue<string>> Logs = new();

    private sealed class KeepingLogger : ReceiveActor, Akka.Dispatch.IRequiresMessageQueue<ILoggerMessageQueueSemantics>
    {
        public KeepingLogger()
        {
            Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
            Receive<LogEvent>(e => Logs.GetOrAdd(Context.System, _ => new()).Enqueue($"[{e.LogLevel()}] {e.LogSource}: {e.Message}"
                + (e.Cause is null ? "" : $" ({e.Cause.GetType().Name}: {e.Cause.Message})")));
        }
    }

    private sealed class QuietMemory : Memory.IMemoryReader
    {
        public Memory.MemoryReading Read() => new(100, 10);
        public long MachineBytes => 1_000_000;
    }

    private sealed record Node(string Name, IHost Host, FakeEngineFactory Engines)
    {
        public ActorSystem System => Host.Services.GetRequiredService<ActorSystem>();
        public Address Address => AkkaCluster.Get(System).SelfAddress;
        public IReadOnlyList<string> Log => Logs.TryGetValue(System, out var q) ? q.ToList() : [];
    }

    private readonly List<Node> _nodes = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var n in _nodes.AsEnumerable().Reverse())
        {
            output.WriteLine($"--- {n.Name} logged:");
            foreach (var line in n.Log) output.WriteLine(line);
            try { await n.Host.StopAsync(TimeSpan.FromSeconds(5)); } catch (Exception e) { output.WriteLine($"stop: {e.Message}"); }
            Logs.TryRemove(n.System, out _);
            n.Host.Dispose();
        }
    }

    private async Task<Node> Start(string name, string[] roles, string? seed, ClusterTlsOptions? tls)
    {
        var engines = new FakeEngineFactory(tokenizer: new LetterTokenizer());
        var options = new ActorQueryNodeOptions
        {
            Node = name,
            Router = new RouterOptions { DefaultTimeout = TimeSpan.FromSeconds(10) },
            Workers = new WorkerOptions { Count = 1, MaxBatch = 8 },
            Watchdog = new WatchdogOptions { Enabled = false },
        };
        var cluster = new ClusterNodeOptions
        {
            Roles = roles,
            SeedNodes = seed is null ? [] : [seed],
            LoadPublishInterval = TimeSpan.FromMilliseconds(50),
            HeartbeatInterval = TimeSpan.FromMilliseconds(300),
            Tls = tls,
        };
        var host = new HostBuilder()
            .ConfigureServices(services => services.AddAkka("actorquery", (akka, _) =>
            {
                akka.AddHocon(FastCluster, HoconAddMode.Prepend);
                akka.ConfigureLoggers(l => l.AddLogger<KeepingLogger>());
                akka.AddActorQueryNode(RepoHocon.Node, options, cluster, _ => engines, new QuietMemory());
            }))
            .Build();
        await host.StartAsync();
        var node = new Node(name, host, engines);
        _nodes.Add(node);
        return node;
    }

    private static IActorRef RouterOf(Node node) => node.Host.Services.GetRequiredService<ActorRegistry>().Get<QueryRouter>();

    private static Task<RouterStatus> WaitForReadyWorkers(Node gateway, int count, TimeSpan within) =>
        Eventually.Until(() => RouterOf(gateway).Ask<RouterStatus>(GetStatus.Instance, TimeSpan.FromSeconds(5)),
            status => status.Workers.Count(w => w.State == WorkerState.Ready) == count, within, $"the gateway to see {count} ready workers",
            status => string.Join(", ", status.Workers.Select(w => $"{w.Node}/{w.Worker}:{w.State}")), interval: TimeSpan.FromMilliseconds(50));

    /// <summary>A query through the gateway's router, to its terminal event.</summary>
    /// <param name="variant">Makes the prompt differ from other queries', so that none is answered from the answer cache (a
    /// query submitted after an identical one completed would be, and no engine would see it).</param>
    private static async Task<QueryEvent> Ask(Node gateway, string id, int variant = 0)
    {
        var inbox = Inbox.Create(gateway.System);
        RouterOf(gateway).Tell(new SubmitQuery(new QueryRequest
        {
            QueryId = id, PromptTokenIds = [5, 1, 2, 10 + variant], Sampling = SamplingParams.Greedy(4), Timeout = TimeSpan.FromSeconds(10),
        }, inbox.Receiver));
        while (true)
            if (await inbox.ReceiveAsync(TimeSpan.FromSeconds(15)) is QueryEvent { IsTerminal: true } terminal) return terminal;
    }

    [Fact]
    public async Task Should_form_a_cluster_of_nodes_with_certificates_from_the_cluster_CA_and_refuse_a_node_without_one()
    {
        using var ca = TestCertificates.Ca("actorquery-test-ca");
        using var caPublic = X509CertificateLoader.LoadCertificate(ca.RawData); // what a node is given: the CA without its key
        var a = await Start("node-a", ["gateway", "worker"], seed: null, new ClusterTlsOptions(TestCertificates.Node("node-a", ca), caPublic));
        Assert.Equal("akka.ssl.tcp", a.Address.Protocol);
        var seed = a.Address.ToString();
        var b = await Start("node-b", ["worker"], seed, new ClusterTlsOptions(TestCertificates.Node("node-b", ca), caPublic));
        await WaitForReadyWorkers(a, 2, TimeSpan.FromSeconds(15));
        Assert.Equal(2, AkkaCluster.Get(a.System).State.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up));

        // An intruder that knows the CA's certificate (it is no secret) but holds only a self-signed one of its own, and
        // a node without TLS aimed at the same port.
        var intruder = await Start("intruder", ["worker"], seed, new ClusterTlsOptions(TestCertificates.Node("intruder", ca: null), caPublic));
        var plain = await Start("plain", ["worker"], $"akka.tcp://actorquery@127.0.0.1:{a.Address.Port}", tls: null);

        // The seed says why, naming the intruder's certificate.
        await Eventually.Until(() => a.Log.Any(l => l.Contains("cluster TLS: refused") && l.Contains("CN=intruder") && l.Contains("cluster CA [CN=actorquery-test-ca]")),
            TimeSpan.FromSeconds(10), "the seed to log why it refused the intruder", () => string.Join("\n", a.Log));
        // Long enough for several join attempts (retry-unsuccessful-join-after = 1s): none gets in.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var members = AkkaCluster.Get(a.System).State.Members.Select(m => m.Address).ToList();
        Assert.Equal(new[] { a.Address, b.Address }.OrderBy(m => m.Port), members.OrderBy(m => m.Port));
        Assert.NotEqual(Akka.Cluster.MemberStatus.Up, AkkaCluster.Get(intruder.System).SelfMember.Status);
        Assert.NotEqual(Akka.Cluster.MemberStatus.Up, AkkaCluster.Get(plain.System).SelfMember.Status);

        // The two members keep serving, the remote one over TLS too; the intruder's worker got nothing.
        await WaitForReadyWorkers(a, 2, TimeSpan.FromSeconds(5));
        var answers = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => Ask(a, $"q-{i}", i)));
        Assert.All(answers, t => Assert.IsType<QueryCompleted>(t));
        Assert.Equal(10, a.Engines.Log.AddedPrompts.Count + b.Engines.Log.AddedPrompts.Count);
        Assert.True(b.Engines.Log.AddedPrompts.Count > 0, "node B (remote) served none");
        // The intruder's own log says why too (its certificate is not from the CA it was given).
        Assert.Contains(intruder.Log, l => l.Contains("cluster TLS: this node's certificate [CN=intruder] is not from the cluster CA"));
        Assert.Empty(intruder.Engines.Log.AddedPrompts);
        Assert.Empty(plain.Engines.Log.AddedPrompts);
    }
}
