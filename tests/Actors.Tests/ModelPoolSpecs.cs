using System.Collections.Concurrent;
using Akka.Actor;
using Akka.TestKit;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// The model pool's state machine, keep-alive, least-recently-used eviction and pinning, with each model's worker process
/// supervisor replaced by a probe: the specs send the pool what a supervisor reports (ready, busy, failed, stopped) and see
/// what it asks of the supervisors (stop, drain) and tells the router.
/// </summary>
public sealed class ModelPoolSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    private const long Unit = 1L << 30;

    /// <summary>Stands in for a model's WorkerProcessSupervisor: passes what the pool tells it to the spec's probe.</summary>
    private sealed class SupervisorStandIn(IActorRef probe, string model) : ReceiveActor
    {
        public SupervisorStandIn() : this(ActorRefs.Nobody, "") { }
        protected override void PreStart() => probe.Tell(("started", model));
        protected override void Unhandled(object message) => probe.Tell((message, model));
    }

    private readonly ConcurrentQueue<string> _started = new();

    private (IActorRef Pool, TestProbe Supervisors, TestProbe Router) Start(long budget, params ModelPoolEntry[] models)
    {
        var supervisors = CreateTestProbe();
        var router = CreateTestProbe();
        var options = new ModelPoolOptions(models, budget, "test budget")
        {
            Tick = TimeSpan.FromMilliseconds(50),
            IdleGrace = TimeSpan.Zero,
        };
        var pool = Sys.ActorOf(ModelPool.Props(options, (entry, _, _) =>
        {
            _started.Enqueue(entry.Name);
            return Props.Create(() => new SupervisorStandIn(supervisors.Ref, entry.Name));
        }, router.Ref, subscribe: false));
        router.ExpectMsg<ModelCatalog>();
        return (pool, supervisors, router);
    }

    private static ModelPoolEntry Model(string name, long bytes = Unit, bool pinned = false, TimeSpan? keepAlive = null) =>
        new(name, "/models/" + name, bytes, "test", pinned, keepAlive ?? TimeSpan.FromMinutes(5));

    private static WorkerProcessesChanged Ready(string model, bool busy = false) => new(model, true, busy, false, false, null, 100);
    private static WorkerProcessesChanged Stopped(string model) => new(model, false, false, false, true, null, null);

    private static ModelPoolInfo InfoOf(IActorRef pool, string model) =>
        pool.Ask<ModelPoolView>(GetModelPool.Instance, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult().Models.Single(m => m.Name == model);

    private void ExpectStarted(TestProbe supervisors, string model) =>
        Assert.Equal(("started", model), supervisors.ExpectMsg<(string, string)>(TimeSpan.FromSeconds(5)));

    private object ExpectToSupervisor(TestProbe supervisors, string model)
    {
        var (message, to) = supervisors.ExpectMsg<(object, string)>(TimeSpan.FromSeconds(5));
        Assert.Equal(model, to);
        return message;
    }

    /// <summary>Loads <paramref name="model"/> by a query and finishes that query: ready and idle.</summary>
    private void LoadAndIdle(IActorRef pool, TestProbe supervisors, string model)
    {
        pool.Tell(new ModelActivity(model, 1, null));
        ExpectStarted(supervisors, model);
        pool.Tell(Ready(model, busy: true));
        pool.Tell(Ready(model));
        pool.Tell(new ModelActivity(model, 0, null));
        AwaitAssert(() => Assert.Equal("ready", InfoOf(pool, model).State));
    }

    [Fact]
    public void Should_load_a_model_when_a_query_asks_for_it_and_show_it_ready_once_its_workers_are()
    {
        var (pool, supervisors, _) = Start(4 * Unit, Model("a"), Model("b"));
        Assert.Equal("available", InfoOf(pool, "a").State);

        pool.Tell(new ModelActivity("a", 1, null));
        ExpectStarted(supervisors, "a");
        Assert.Equal("loading", InfoOf(pool, "a").State);
        pool.Tell(Ready("a"));

        AwaitAssert(() => Assert.Equal(("ready", 1L, 100L), (InfoOf(pool, "a").State, InfoOf(pool, "a").Loads, InfoOf(pool, "a").ResidentBytes ?? 0)));
        Assert.Equal("available", InfoOf(pool, "b").State);
        supervisors.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void Should_unload_a_model_idle_past_its_keep_alive_and_count_the_unload()
    {
        var (pool, supervisors, _) = Start(4 * Unit, Model("a", keepAlive: TimeSpan.FromMilliseconds(300)));
        LoadAndIdle(pool, supervisors, "a");

        Assert.IsType<StopWorkerProcesses>(ExpectToSupervisor(supervisors, "a"));
        Assert.Equal("unloading", InfoOf(pool, "a").State);
        pool.Tell(Stopped("a"));
        AwaitAssert(() => Assert.Equal(("available", 1L, (long?)null), (InfoOf(pool, "a").State, InfoOf(pool, "a").Unloads, InfoOf(pool, "a").ResidentBytes)));
    }

    [Fact]
    public void Should_keep_a_model_with_live_queries_past_its_keep_alive()
    {
        var (pool, supervisors, _) = Start(4 * Unit, Model("a", keepAlive: TimeSpan.FromMilliseconds(100)));
        pool.Tell(new ModelActivity("a", 1, null));
        ExpectStarted(supervisors, "a");
        pool.Tell(Ready("a"));

        supervisors.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        Assert.Equal("ready", InfoOf(pool, "a").State);
    }

    [Fact]
    public void Should_honour_a_requests_keep_alive_zero_and_minus_one()
    {
        var (pool, supervisors, _) = Start(4 * Unit, Model("a"), Model("b", keepAlive: TimeSpan.FromMilliseconds(100)));
        pool.Tell(new ModelActivity("a", 1, TimeSpan.Zero));
        ExpectStarted(supervisors, "a");
        pool.Tell(Ready("a"));
        pool.Tell(new ModelActivity("a", 0, null));
        Assert.IsType<StopWorkerProcesses>(ExpectToSupervisor(supervisors, "a"));

        pool.Tell(new ModelActivity("b", 1, Timeout.InfiniteTimeSpan));
        ExpectStarted(supervisors, "b");
        pool.Tell(Ready("b"));
        pool.Tell(new ModelActivity("b", 0, null));
        supervisors.ExpectNoMsg(TimeSpan.FromMilliseconds(500)); // b's own keep-alive (100 ms) no longer applies
        Assert.True(InfoOf(pool, "b").Pinned);
    }

    [Fact]
    public void Should_evict_the_least_recently_used_idle_model_to_make_room_and_never_a_pinned_one()
    {
        var (pool, supervisors, router) = Start(2 * Unit, Model("pinned", pinned: true), Model("old"), Model("recent"));
        ExpectStarted(supervisors, "pinned");
        pool.Tell(Ready("pinned"));
        LoadAndIdle(pool, supervisors, "old");
        Thread.Sleep(20);
        pool.Tell(new ModelActivity("pinned", 1, null)); // used most recently of all, but pinned
        pool.Tell(new ModelActivity("pinned", 0, null));
        // The budget is full (2 of 2): "recent" cannot load before one goes; "old" is the least recently used idle one.
        pool.Tell(new ModelActivity("recent", 1, null));
        Assert.IsType<StopWorkerProcesses>(ExpectToSupervisor(supervisors, "old"));
        Assert.Equal(1, InfoOf(pool, "old").Evictions);
        supervisors.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // "recent" waits until "old" has stopped
        pool.Tell(Stopped("old"));
        ExpectStarted(supervisors, "recent");
        router.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        Assert.Equal(("ready", 0L), (InfoOf(pool, "pinned").State, InfoOf(pool, "pinned").Unloads));
    }

    [Fact]
    public void Should_drain_a_busy_model_for_a_waiting_one_and_unload_it_only_once_its_queries_end()
    {
        var (pool, supervisors, _) = Start(Unit, Model("a"), Model("b"));
        pool.Tell(new ModelActivity("a", 3, null));
        ExpectStarted(supervisors, "a");
        pool.Tell(Ready("a", busy: true));

        pool.Tell(new ModelActivity("b", 1, null));
        Assert.IsType<DrainWorkerProcesses>(ExpectToSupervisor(supervisors, "a"));
        supervisors.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // a still runs its queries: not stopped
        Assert.Equal("ready", InfoOf(pool, "a").State);

        pool.Tell(Ready("a", busy: false));                      // its workers finished them
        Assert.IsType<StopWorkerProcesses>(ExpectToSupervisor(supervisors, "a"));
        pool.Tell(Stopped("a"));
        ExpectStarted(supervisors, "b");
    }

    [Fact]
    public void Should_refuse_a_model_that_can_never_fit_naming_the_budget_or_the_pinned_models()
    {
        var (pool, supervisors, router) = Start(2 * Unit, Model("pinned", 2 * Unit, pinned: true), Model("huge", 3 * Unit), Model("small"));
        ExpectStarted(supervisors, "pinned");
        pool.Tell(Ready("pinned"));

        pool.Tell(new ModelActivity("huge", 1, null));
        var tooBig = router.ExpectMsg<ModelUnavailable>();
        Assert.Equal("huge", tooBig.Model);
        Assert.Contains("more than this node's whole budget", tooBig.Reason);

        pool.Tell(new ModelActivity("huge", 0, null));
        pool.Tell(new ModelActivity("small", 1, null));
        var noRoom = (ModelUnavailable)router.FishForMessage(m => m is ModelUnavailable { Model: "small" });
        Assert.Contains("pinned models hold pinned", noRoom.Reason);
        Assert.NotNull(noRoom.RetryAfter);
        supervisors.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void Should_fail_a_load_with_its_reason_and_try_again_on_the_next_query()
    {
        var (pool, supervisors, router) = Start(4 * Unit, Model("a"));
        pool.Tell(new ModelActivity("a", 1, null));
        ExpectStarted(supervisors, "a");
        pool.Tell(new WorkerProcessesChanged("a", false, false, true, false, "exited with code 2: weights missing", null));

        var failed = router.ExpectMsg<ModelUnavailable>();
        Assert.Contains("weights missing", failed.Reason);
        Assert.Equal(("failed", "exited with code 2: weights missing"), (InfoOf(pool, "a").State, InfoOf(pool, "a").Error));

        pool.Tell(new ModelActivity("a", 0, null));
        pool.Tell(new ModelActivity("a", 1, null));
        ExpectStarted(supervisors, "a");
        Assert.Equal(2, InfoOf(pool, "a").Loads);
    }

    [Fact]
    public async Task Should_load_and_unload_on_request_and_refuse_to_unload_a_busy_model()
    {
        var (pool, supervisors, _) = Start(4 * Unit, Model("a"));
        var load = await pool.Ask<ModelPoolAnswer>(new LoadModel("a"), TimeSpan.FromSeconds(5));
        Assert.Equal((200, "loading"), (load.Status, load.Model!.State));
        ExpectStarted(supervisors, "a");
        pool.Tell(Ready("a"));
        pool.Tell(new ModelActivity("a", 1, null));

        var busy = await pool.Ask<ModelPoolAnswer>(new UnloadModel("a"), TimeSpan.FromSeconds(5));
        Assert.Equal(409, busy.Status);
        pool.Tell(new ModelActivity("a", 0, null));
        var unload = await pool.Ask<ModelPoolAnswer>(new UnloadModel("a"), TimeSpan.FromSeconds(5));
        Assert.Equal((200, "unloading"), (unload.Status, unload.Model!.State));
        Assert.IsType<StopWorkerProcesses>(ExpectToSupervisor(supervisors, "a"));

        var unknown = await pool.Ask<ModelPoolAnswer>(new LoadModel("zzz"), TimeSpan.FromSeconds(5));
        Assert.Equal(404, unknown.Status);
        Assert.Contains("models: a", unknown.Error);
    }
}
