using Akka.Actor;
using Akka.TestKit;
using ActorQuery.Actors.Memory;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Contracts;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// The watchdog's state machine under virtual time. The node here: a 10,000-byte limit, 1,000 bytes held by the runtime
/// before any model, one worker whose plan is weights 3,000 + load overhead 500 + activations 500 + KV pool 2,000. The
/// plan is then 7,000 and leaves 3,000 of headroom, so the marks (0.5 / 0.8 / 0.95 of it) sit at 8,500, 9,400 and 9,850.
/// </summary>
public sealed class MemoryWatchdogSpecs(ITestOutputHelper output) : ActorSpec(VirtualTime, output)
{
    private const long Plan = 7_000, CleanupAt = 8_500, PauseAt = 9_400, ShedAt = 9_850;

    private sealed class SettableMemory : IMemoryReader
    {
        public long Resident { get; set; }
        public MemoryReading Read() => new(Resident, Resident / 10);
    }

    private static readonly MemoryBudget Budget = new(10_000, "cgroup limit", 0.9, HeldBytes: 1_000, AvailableBytes: 9_000, Workers: 1);

    private static WorkerStatus Loaded(long kvUsed = 0) => new()
    {
        Worker = "worker-1", Node = "n", State = WorkerState.Ready,
        Memory = new EngineMemory(WeightBytes: 3_000, KvCacheBytes: 2_000) { LoadOverheadBytes = 500, ActivationPeakBytes = 500, KvUsedBytes = kvUsed },
    };

    private sealed record Node(TestScheduler Clock, SettableMemory Memory, TestProbe Router, TestProbe Worker, TestProbe Published, IActorRef Watchdog)
    {
        /// <summary>Sets resident memory and advances the clock to the next reading.</summary>
        public MemoryStatus Read(long resident, TimeSpan after)
        {
            Memory.Resident = resident;
            Clock.Advance(after);
            return Published.ExpectMsg<MemoryStatus>();
        }
    }

    /// <summary>A watchdog with one worker that has reported its loaded plan; memory starts at the plan (weights and a full
    /// KV pool resident), read once.</summary>
    private Node Start(WorkerStatus? status = null, WatchdogOptions? options = null)
    {
        var clock = (TestScheduler)Sys.Scheduler;
        var memory = new SettableMemory { Resident = 1_000 };
        var router = CreateTestProbe();
        var worker = CreateTestProbe();
        var published = CreateTestProbe();
        Sys.EventStream.Subscribe(published, typeof(MemoryStatus));
        var watchdog = Sys.ActorOf(MemoryWatchdog.Props(options ?? new WatchdogOptions(), Budget, memory, router.Ref));
        published.ExpectMsg<MemoryStatus>(); // the first reading is immediate, before any worker registered
        watchdog.Tell(new RegisterWorker(worker.Ref));
        worker.ExpectMsg<SubscribeWorkerStatus>();
        var node = new Node(clock, memory, router, worker, published, watchdog);
        memory.Resident = Plan;
        watchdog.Tell(status ?? Loaded(kvUsed: 2_000), worker.Ref);
        // A loaded worker changes the plan, and the watchdog reads again at once; one still loading changes nothing.
        var first = status is { Memory: null } ? node.Read(Plan, TimeSpan.FromSeconds(5)) : published.ExpectMsg<MemoryStatus>();
        Assert.Equal(MemoryState.Normal, first.State);
        return node;
    }

    [Fact]
    public void Should_not_count_weights_and_a_full_kv_pool_against_the_marks()
    {
        var node = Start();
        var status = node.Read(Plan + 1_000, TimeSpan.FromSeconds(5)); // the plan and a third of its headroom

        Assert.Equal((Plan, CleanupAt, PauseAt, ShedAt), (status.PlannedBytes, status.CleanupAtBytes, status.PauseAtBytes, status.ShedAtBytes));
        Assert.Equal((3_000L, 2_000L, 2_000L, 500L), (status.WeightBytes, status.KvCacheBytes, status.KvUsedBytes, status.ActivationPeakBytes));
        Assert.Equal(MemoryState.Normal, status.State);
        Assert.Equal(8_000 - 1_000 - 3_000 - 500 - 2_000, status.UnaccountedBytes);
        node.Router.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        node.Worker.ExpectNoMsg(TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public void Should_read_again_at_once_when_a_worker_reports_a_new_plan()
    {
        var node = Start();
        node.Watchdog.Tell(Loaded() with { State = WorkerState.Failed, Memory = null }, node.Worker.Ref);

        var status = node.Published.ExpectMsg<MemoryStatus>(TimeSpan.FromSeconds(1)); // no clock advance: not a tick
        Assert.Equal(1_000, status.PlannedBytes); // a failed worker holds nothing any more
        node.Watchdog.Tell(Loaded(kvUsed: 500), node.Worker.Ref);
        Assert.Equal(Plan, node.Published.ExpectMsg<MemoryStatus>(TimeSpan.FromSeconds(1)).PlannedBytes);
        node.Watchdog.Tell(Loaded(kvUsed: 1_500), node.Worker.Ref); // only the KV in use changed: the plan did not
        node.Published.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void Should_read_sooner_while_memory_grows_toward_the_cleanup_mark()
    {
        var node = Start();

        // 1,000 in 5 s, 500 under the cleanup mark: it would be there in 2.5 s, so the next reading comes in half that.
        var growing = node.Read(CleanupAt - 500, TimeSpan.FromSeconds(5));
        Assert.Equal((MemoryState.Normal, TimeSpan.FromSeconds(1.25)), (growing.State, growing.ReadEvery));

        // Faster still: never sooner than the fast interval.
        var fast = node.Read(CleanupAt - 10, TimeSpan.FromSeconds(1.25));
        Assert.Equal(TimeSpan.FromMilliseconds(100), fast.ReadEvery);

        var steady = node.Read(CleanupAt - 10, TimeSpan.FromMilliseconds(100));
        Assert.Equal(TimeSpan.FromSeconds(5), steady.ReadEvery);
    }

    [Fact]
    public void Should_clean_up_above_the_cleanup_mark_read_faster_and_not_repeat_a_cleanup_that_freed_nothing()
    {
        var node = Start();

        var status = node.Read(CleanupAt + 100, TimeSpan.FromSeconds(5));
        Assert.Equal((MemoryState.Cleanup, TimeSpan.FromMilliseconds(100), 1L), (status.State, status.ReadEvery, status.Cleanups));
        node.Worker.ExpectMsg<CleanupMemory>();
        node.Router.ExpectMsg<CleanupMemory>(); // the answer cache

        // The fast reading comes after 100 ms, not 5 s; the cleanup freed nothing, so the next ones do not repeat it.
        for (int i = 0; i < 5; i++) node.Read(CleanupAt + 100, TimeSpan.FromMilliseconds(100));
        node.Worker.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        // After the backoff it tries again.
        node.Memory.Resident = CleanupAt + 100;
        node.Clock.Advance(TimeSpan.FromSeconds(30));
        node.Worker.ExpectMsg<CleanupMemory>();
    }

    [Fact]
    public void Should_repeat_a_cleanup_at_once_when_the_last_one_freed_memory()
    {
        var node = Start();
        node.Read(CleanupAt + 500, TimeSpan.FromSeconds(5));
        node.Worker.ExpectMsg<CleanupMemory>();

        var status = node.Read(CleanupAt + 200, TimeSpan.FromMilliseconds(100)); // 300 freed: 10% of the headroom
        Assert.Equal(2L, status.Cleanups);
        node.Worker.ExpectMsg<CleanupMemory>();
    }

    [Fact]
    public void Should_pause_admission_above_the_pause_mark_and_resume_only_under_the_cleanup_mark()
    {
        var node = Start();

        var paused = node.Read(PauseAt + 100, TimeSpan.FromSeconds(5));
        Assert.True(paused.Paused);
        var reason = node.Router.FishForMessage<PauseAdmission>(_ => true).Reason;
        Assert.Equal("memory 9 KiB is 100 B above the pause mark 9 KiB (plan 7 KiB + 80% of the 3 KiB it leaves under the cgroup limit 10 KiB)", reason);
        Assert.Equal(reason, paused.Reason);
        Assert.Equal(reason, node.Worker.FishForMessage<MemoryPressure>(_ => true).Reason); // gateways elsewhere route around it

        // Between the marks: still paused, nothing more sent to the router than the cache cleanup.
        var between = node.Read(CleanupAt + 300, TimeSpan.FromMilliseconds(100));
        Assert.Equal(MemoryState.Paused, between.State);
        node.Router.FishUntilNoMsg<PauseAdmission, ResumeAdmission>();

        var resumed = node.Read(CleanupAt - 100, TimeSpan.FromMilliseconds(100));
        Assert.Equal((MemoryState.Normal, false, null, 1L), (resumed.State, resumed.Paused, resumed.Reason, resumed.Pauses));
        node.Router.FishForMessage<ResumeAdmission>(_ => true);
        Assert.Null(node.Worker.FishForMessage<MemoryPressure>(_ => true).Reason);
        // Just back under: one more fast reading to see whether the growth goes on; steady, then the normal interval.
        Assert.Equal(TimeSpan.FromMilliseconds(100), resumed.ReadEvery);
        Assert.Equal(TimeSpan.FromSeconds(5), node.Read(CleanupAt - 100, TimeSpan.FromMilliseconds(100)).ReadEvery);
    }

    [Fact]
    public void Should_preempt_the_newest_sequences_above_the_shed_mark_while_memory_stays_there()
    {
        var node = Start();

        var shedding = node.Read(ShedAt + 50, TimeSpan.FromSeconds(5));
        Assert.Equal((MemoryState.Shedding, true, 1L), (shedding.State, shedding.Paused, shedding.Sheds));
        // The steps are held for three fast readings: the next reading renews the hold, or it lapses.
        Assert.Equal(TimeSpan.FromMilliseconds(300), node.Worker.FishForMessage<ShedLoad>(_ => true).HoldSteps);
        node.Router.FishForMessage<PauseAdmission>(_ => true);

        var again = node.Read(ShedAt + 10, TimeSpan.FromMilliseconds(100));
        Assert.Equal(2L, again.Sheds);
        Assert.Equal(TimeSpan.FromMilliseconds(300), node.Worker.FishForMessage<ShedLoad>(_ => true).HoldSteps);

        var under = node.Read(PauseAt - 10, TimeSpan.FromMilliseconds(100)); // under the shed mark, above cleanup: paused
        Assert.Equal((MemoryState.Paused, 2L), (under.State, under.Sheds));
    }

    [Fact]
    public void Should_hold_the_workers_steps_above_the_shed_mark_for_at_most_the_shed_hold()
    {
        var node = Start(options: new WatchdogOptions { ShedHold = TimeSpan.FromSeconds(1) });

        node.Read(ShedAt + 50, TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.FromMilliseconds(300), node.Worker.FishForMessage<ShedLoad>(_ => true).HoldSteps);
        for (int i = 0; i < 9; i++)
        {
            node.Read(ShedAt + 50, TimeSpan.FromMilliseconds(100));
            Assert.Equal(TimeSpan.FromMilliseconds(300), node.Worker.FishForMessage<ShedLoad>(_ => true).HoldSteps);
        }

        // A second above the mark: memory that holding did not bring back; the workers still shed, but step on.
        var held = node.Read(ShedAt + 50, TimeSpan.FromMilliseconds(100));
        Assert.Equal(MemoryState.Shedding, held.State);
        Assert.Equal(TimeSpan.Zero, node.Worker.FishForMessage<ShedLoad>(_ => true).HoldSteps);

        // Back under the mark and over it again: a new episode, held again.
        node.Read(PauseAt, TimeSpan.FromMilliseconds(100));
        node.Read(ShedAt + 50, TimeSpan.FromMilliseconds(100));
        Assert.Equal(TimeSpan.FromMilliseconds(300), node.Worker.FishForMessage<ShedLoad>(_ => true).HoldSteps);
    }

    [Fact]
    public void Should_pause_a_worker_process_when_it_and_its_parent_server_together_near_the_limit()
    {
        // A worker process's plan holds its parent's memory (1 GiB here) as well as its own, and both count against the
        // node's limit: its readings must hold the parent too, or its marks sit where the kernel has acted already.
        const long gib = 1L << 30;
        long parent = gib;
        long held = NativeMemory.ResidentBytes() + parent;
        var budget = new MemoryBudget(held + gib, "cgroup limit", 0.9, held, gib, Workers: 1);
        var reader = new ProcessMemoryReader(otherProcessesBytes: () => parent);
        var router = CreateTestProbe();
        var published = CreateTestProbe();
        Sys.EventStream.Subscribe(published, typeof(MemoryStatus));
        Sys.ActorOf(MemoryWatchdog.Props(new WatchdogOptions(), budget, reader, router.Ref));
        var first = published.ExpectMsg<MemoryStatus>();
        Assert.False(first.Paused); // both as they were when the plan was made: 800 MiB under the pause mark

        parent += 2 * gib; // the parent grew past the node's limit; this process's own memory did not move
        ((TestScheduler)Sys.Scheduler).Advance(TimeSpan.FromSeconds(5));
        var status = published.ExpectMsg<MemoryStatus>();
        Assert.Equal((MemoryState.Shedding, true), (status.State, status.Paused));
        router.FishForMessage<PauseAdmission>(_ => true);
    }

    [Fact]
    public void Should_count_a_loading_worker_by_its_whole_share_of_the_budget()
    {
        // Still loading: no plan reported yet, so its share (budget 9,000 × 0.9 − 1,000 held = 8,000) is promised to it.
        var node = Start(new WorkerStatus { Worker = "worker-1", Node = "n", State = WorkerState.Loading });
        var status = node.Read(8_500, TimeSpan.FromSeconds(5));

        Assert.Equal(1_000 + Budget.PerWorkerBytes, status.PlannedBytes);
        Assert.Equal(MemoryState.Normal, status.State);
    }
}

internal static class ProbeExtensions
{
    /// <summary>Asserts that no message of the two types comes within 50 ms (other messages are skipped).</summary>
    public static void FishUntilNoMsg<T1, T2>(this TestProbe probe)
    {
        var got = probe.ReceiveWhile(TimeSpan.FromMilliseconds(50), m => m);
        Assert.DoesNotContain(got, m => m is T1 or T2);
    }
}
