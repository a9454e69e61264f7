using Akka.Actor;
using Akka.Hosting;
using ActorQuery.TestSupport;
using ActorQuery.Contracts;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Hosting;
using ActorQuery.Actors.Memory;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Inference.Engine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// The node as the Host wires it: Akka.Hosting's AddAkka + AddActorQueryNode in a generic host, and the HTTP
/// layer's view of it through <see cref="IQueryClient"/>. (Akka.Hosting.TestKit 1.5.74 needs xunit v3, so these
/// specs start a plain generic host instead.)
/// </summary>
public sealed class HostingSpecs : IAsyncLifetime
{
    private sealed class QuietMemory : IMemoryReader
    {
        public MemoryReading Read() => new(100, 10);
        public long MachineBytes => 1_000_000;
    }

    private readonly FakeEngineFactory _engines = new(tokenizer: new LetterTokenizer());
    private IHost _host = null!;

    public async Task InitializeAsync()
    {
        var options = new ActorQueryNodeOptions
        {
            Node = "node-a",
            Router = new RouterOptions { MaxInFlight = 4 },
            Workers = new WorkerOptions { Count = 2, MaxBatch = 4 },
            Faults = new FaultOptions { StepDelayMs = 2 },
        };
        _host = new HostBuilder()
            .ConfigureServices(services =>
            {
                services.AddAkka("actorquery-test", (akka, _) => akka
                    .AddHocon("akka.loglevel = WARNING", HoconAddMode.Prepend)
                    .AddActorQueryNode(RepoHocon.Node, options, new ClusterNodeOptions(), _ => FaultInjectingEngineFactory.Wrap(_engines, options.Faults), new QuietMemory()));
                services.AddActorQueryClient();
            })
            .Build();
        await _host.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
    }

    private IQueryClient Client => _host.Services.GetRequiredService<IQueryClient>();

    private Task<RouterStatus> Status() => Client.GetStatusAsync(TimeSpan.FromSeconds(5), CancellationToken.None);

    private static string Describe(RouterStatus s) =>
        $"in flight {s.InFlight}; " + string.Join(", ", s.Workers.Select(w => $"{w.Worker}:{w.State} running {w.Running}"));

    private Task<RouterStatus> ReadyStatus() =>
        Eventually.Until(Status, s => s.Workers.Count == 2 && s.Workers.All(w => w.State == WorkerState.Ready),
            TimeSpan.FromSeconds(10), "the node's two workers to become ready", Describe, interval: TimeSpan.FromMilliseconds(25));

    [Fact]
    public async Task Should_wire_router_workers_and_watchdog_and_stream_a_query_through_the_client()
    {
        var status = await ReadyStatus();
        Assert.Equal(("node-a", 4), (status.Node, status.MaxInFlight));
        Assert.Equal(new[] { "worker-1", "worker-2" }, status.Workers.Select(w => w.Worker));
        Assert.NotNull(_host.Services.GetRequiredService<ActorRegistry>().Get<MemoryWatchdog>());

        var events = new List<QueryEvent>();
        await foreach (var e in Client.SubmitAsync(new QueryRequest { QueryId = "q1", PromptTokenIds = new[] { 3, 4 }, Sampling = SamplingParams.Greedy(5) },
                           CancellationToken.None))
            events.Add(e);

        var expected = FakeEngine.GreedyAnswer(new[] { 3, 4 }, 5);
        Assert.Equal(expected, events.OfType<TokensGenerated>().SelectMany(t => t.TokenIds));
        Assert.Equal(LetterTokenizer.TextOf(expected), string.Concat(events.OfType<TokensGenerated>().Select(t => t.Text)));
        Assert.IsType<QueryCompleted>(Assert.Single(events, e => e.IsTerminal));
        Assert.Same(events[^1], events.Single(e => e.IsTerminal));
        // The watchdog's reading reaches the router's status. Its first reading, taken at start, can be published
        // before the router has subscribed; the next one comes one interval (5 s) later.
        var after = await Eventually.Until(Status, s => s.Memory is not null, TimeSpan.FromSeconds(12),
            "the watchdog's memory reading in the router's status", interval: TimeSpan.FromMilliseconds(100));
        Assert.NotNull(after.Memory);
    }

    [Fact]
    public async Task Should_cancel_the_query_when_the_caller_cancels_its_stream()
    {
        await ReadyStatus();
        using var cts = new CancellationTokenSource();
        int tokens = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var e in Client.SubmitAsync(
                               new QueryRequest { QueryId = "long", PromptTokenIds = new[] { 1 }, Sampling = SamplingParams.Greedy(2000) }, cts.Token))
                if (e is TokensGenerated && ++tokens == 3) cts.Cancel();
        });

        var status = await Eventually.Until(Status, s => s.InFlight == 0 && s.Workers.All(w => w.Running == 0), TimeSpan.FromSeconds(10),
            "the cancelled query to leave the router and its worker", Describe, interval: TimeSpan.FromMilliseconds(25));
        Assert.Equal(1, status.Counters!.Cancelled);
        Assert.Equal(0, status.InFlight);
        Assert.All(status.Workers, w => Assert.Equal(0, w.Running)); // the worker freed the sequence too
        Assert.Single(_engines.Log.Removed);
    }
}
