using Akka.Actor;
using Akka.TestKit;
using ActorQuery.Contracts;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.Actors.Workers;
using ActorQuery.Inference.Engine;
using Xunit.Abstractions;

namespace ActorQuery.Actors.Tests;

/// <summary>ModelSupervisor + ModelActor with a deterministic fake engine; a TestProbe plays the router.</summary>
public sealed class ModelWorkerSpecs(ITestOutputHelper output) : ActorSpec(null, output)
{
    private (IActorRef Worker, TestProbe Router) StartWorker(IEngineFactory factory, WorkerOptions? options = null)
    {
        var router = CreateTestProbe();
        var worker = Sys.ActorOf(ModelSupervisor.Props("worker-1", "node-a", factory, options ?? FastWorkers(), () => 0.5));
        worker.Tell(new SubscribeWorkerStatus(router), router);
        return (worker, router);
    }

    private static WorkerStatus AwaitState(TestProbe router, WorkerState state, Func<WorkerStatus, bool>? also = null) =>
        (WorkerStatus)router.FishForMessage(m => m is WorkerStatus s && s.State == state && (also?.Invoke(s) ?? true),
            TimeSpan.FromSeconds(10));

    /// <summary>Collects a ticket's events until its terminal one; fails on QueryReturned.</summary>
    private static List<QueryEvent> Collect(TestProbe router, long ticket)
    {
        var events = new List<QueryEvent>();
        while (true)
        {
            var m = router.FishForMessage(x => x is QueryProgress p && p.Ticket == ticket || x is QueryReturned r && r.Ticket == ticket,
                TimeSpan.FromSeconds(10));
            if (m is QueryReturned r) throw new Xunit.Sdk.XunitException($"ticket {ticket} returned: {r.Reason}");
            var e = ((QueryProgress)m).Event;
            events.Add(e);
            if (e.IsTerminal) return events;
        }
    }

    private static List<object> ReceiveUntil(TestProbe probe, Func<object, bool> last)
    {
        var seen = new List<object>();
        while (true)
        {
            var m = probe.ReceiveOne(TimeSpan.FromSeconds(10)) ?? throw new Xunit.Sdk.XunitException($"timed out; saw {string.Join(", ", seen)}");
            seen.Add(m);
            if (last(m)) return seen;
        }
    }

    private static int[] Tokens(IEnumerable<QueryEvent> events) =>
        events.OfType<TokensGenerated>().SelectMany(t => t.TokenIds).ToArray();

    [Fact]
    public void Should_load_the_model_on_its_own_pinned_thread_and_report_loading_then_ready()
    {
        var factory = new FakeEngineFactory();
        var (worker, router) = StartWorker(factory);

        var first = router.ExpectMsg<WorkerStatus>();
        Assert.Equal(WorkerState.Loading, first.State);
        var ready = AwaitState(router, WorkerState.Ready);
        Assert.Equal("fake-model", ready.Model);
        Assert.Equal(4096, ready.KvCapacityTokens);

        worker.Tell(new RunQuery(1, Greedy("q1", 6)), router);
        var events = Collect(router, 1);

        Assert.Equal(FakeEngine.GreedyAnswer(new[] { 5, 6, 7 }, 6), Tokens(events));
        var done = Assert.IsType<QueryCompleted>(events[^1]);
        Assert.Equal((FinishReason.Length, 3, 6, "node-a/worker-1"), (done.FinishReason, done.PromptTokens, done.CompletionTokens, done.Worker));
        // Load and every step ran on one thread, and not the test's.
        Assert.Single(factory.Log.Threads.Keys);
        Assert.NotEqual(Environment.CurrentManagedThreadId, factory.Log.Threads.Keys.Single());
    }

    [Fact]
    public void Should_restart_model_with_cleanup_after_out_of_memory_and_hand_the_query_back()
    {
        var inner = new FakeEngineFactory();
        // Step 1 raises a real libtorch out-of-memory (an impossible allocation), before any token.
        var faulty = new FaultInjectingEngineFactory(inner, new FaultOptions { OomAtSteps = new[] { 1 } });
        var (worker, router) = StartWorker(faulty);
        AwaitState(router, WorkerState.Ready);

        worker.Tell(new RunQuery(7, Greedy("q7")), router);

        var seen = ReceiveUntil(router, m => m is WorkerStatus { State: WorkerState.Ready, Restarts: 1 });
        var returned = seen.OfType<QueryReturned>().Single();
        Assert.Equal(7, returned.Ticket);
        Assert.Equal(0, returned.TokensSent);
        Assert.Contains("out of memory", returned.Reason);
        Assert.Contains("DefaultCPUAllocator: can't allocate memory", returned.Reason); // libtorch's own words
        var restarting = seen.OfType<WorkerStatus>().First(s => s.State == WorkerState.Restarting);
        Assert.Equal((1, 1), (restarting.Restarts, restarting.OomCount));
        var ready = (WorkerStatus)seen[^1];
        Assert.NotNull(ready.LastOom);
        Assert.Equal(2, inner.Log.Loads);
        Assert.Equal(1, inner.Log.Disposes); // the first engine (weights + KV) was disposed before the reload

        // The router's retry on the restarted worker gives the fault-free greedy answer.
        worker.Tell(new RunQuery(8, Greedy("q7")), router);
        Assert.Equal(FakeEngine.GreedyAnswer(new[] { 5, 6, 7 }, 4), Tokens(Collect(router, 8)));
    }

    [Fact]
    public void Should_keep_messages_that_arrive_during_a_restart()
    {
        var inner = new FakeEngineFactory();
        var faulty = new FaultInjectingEngineFactory(inner, new FaultOptions { OomAtSteps = new[] { 1 } });
        var (worker, router) = StartWorker(faulty, FastWorkers() with { BackoffMin = TimeSpan.FromMilliseconds(300), BackoffMax = TimeSpan.FromSeconds(1) });
        AwaitState(router, WorkerState.Ready);
        var deadLetters = CreateTestProbe();
        Sys.EventStream.Subscribe(deadLetters, typeof(Akka.Event.DeadLetter));

        worker.Tell(new RunQuery(1, Greedy("a")), router);
        AwaitState(router, WorkerState.Restarting);
        var restartingSeen = System.Diagnostics.Stopwatch.StartNew();
        worker.Tell(new RunQuery(2, Greedy("b", 3)), router); // arrives during the backoff

        Assert.Equal(FakeEngine.GreedyAnswer(new[] { 5, 6, 7 }, 3), Tokens(Collect(router, 2)));
        // The reload waited for the backoff (300 ms + jitter); a lower bound only, so no timing flake.
        Assert.True(restartingSeen.ElapsedMilliseconds >= 290, $"reloaded after {restartingSeen.ElapsedMilliseconds} ms");
        deadLetters.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void Should_degrade_to_a_smaller_kv_budget_and_batch_then_cpu_after_repeated_out_of_memory_instead_of_looping()
    {
        var inner = new FakeEngineFactory(kvCapacity: 4000, gpu: true);
        var faulty = new FaultInjectingEngineFactory(inner, new FaultOptions { OomEveryNthStep = 1 });
        var options = FastWorkers(maxBatch: 8) with { DegradeAfterOoms = 2, MaxDegradeLevels = 1, CpuFallback = true };
        var (worker, router) = StartWorker(faulty, options);
        AwaitState(router, WorkerState.Ready);
        var warnings = CreateTestProbe();
        Sys.EventStream.Subscribe(warnings, typeof(Akka.Event.Warning));

        // Every step runs out of memory: each query fails its step, the worker restarts.
        for (int i = 1; i <= 6; i++)
        {
            worker.Tell(new RunQuery(i, Greedy($"q{i}")), router);
            router.FishForMessage<QueryReturned>(r => r.Ticket == i, TimeSpan.FromSeconds(10));
            AwaitState(router, WorkerState.Ready);
        }

        var status = AwaitStatus(worker);
        Assert.True(status.Degraded);
        Assert.Equal(2, status.DegradeLevel);                    // half budget and batch, then the CPU fallback; no further
        Assert.Contains("out-of-memory failures", status.DegradedReason);
        Assert.Equal(6, status.OomCount);
        Assert.Equal(6, status.Restarts);
        Assert.Equal("cpu", status.Device);
        var loads = inner.Log.LoadSettings.ToArray();
        Assert.Equal(7, loads.Length);                           // one reload per failure: no loop without work
        Assert.Equal((1.0, 8, false), (loads[0].KvBudgetFraction, loads[0].MaxBatch, loads[0].ForceCpu));
        Assert.Contains(loads, l => l is { KvBudgetFraction: 0.5, MaxBatch: 4, ForceCpu: false });
        Assert.Equal((0.5, 4, true), (loads[^1].KvBudgetFraction, loads[^1].MaxBatch, loads[^1].ForceCpu));
        Assert.Equal(2000, status.KvCapacityTokens);
        var logged = warnings.ReceiveWhile(TimeSpan.FromMilliseconds(200), m => m is Akka.Event.Warning w ? w.Message.ToString() : null);
        Assert.Contains(logged, m => m!.Contains("degraded to level 1 (KV budget 50%, batch 4)"));
        Assert.Contains(logged, m => m!.Contains("degraded to level 2 (KV budget 50%, batch 4, CPU fallback)"));
    }

    [Fact]
    public void Should_retry_a_model_that_cannot_load_with_backoff_then_mark_the_worker_failed_without_a_crash_loop()
    {
        var factory = new FakeEngineFactory(loadFault: _ => new FileNotFoundException("model.safetensors not found"));
        var (worker, router) = StartWorker(factory, FastWorkers() with { MaxLoadAttempts = 3 });

        var failed = AwaitState(router, WorkerState.Failed);
        Assert.Contains("model.safetensors not found", failed.Error);
        Assert.Contains("failed to load 3 times", failed.Error);
        Assert.Equal(0, failed.Restarts);
        Assert.Equal(3, failed.LoadAttempts);

        worker.Tell(new RunQuery(3, Greedy("q")), router);
        var returned = router.FishForMessage<QueryReturned>(_ => true, TimeSpan.FromSeconds(5));
        Assert.Contains("failed", returned.Reason);
        router.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // nothing more: no reload attempts
        Assert.Equal(WorkerState.Failed, AwaitStatus(worker).State);
    }

    [Fact]
    public void Should_retry_a_load_that_ran_out_of_memory_at_a_smaller_budget_and_give_up_after_the_last_attempt()
    {
        var recovering = new FakeEngineFactory(kvCapacity: 1000);
        var once = new FaultInjectingEngineFactory(recovering, new FaultOptions { OomOnLoadAttempts = 1 });
        var (_, router1) = StartWorker(once);
        var ready = AwaitState(router1, WorkerState.Ready);
        Assert.Equal((1, 1, 500), (ready.DegradeLevel, ready.OomCount, ready.KvCapacityTokens));

        var hopeless = new FaultInjectingEngineFactory(new FakeEngineFactory(), new FaultOptions { OomOnLoadAttempts = 100 });
        var (_, router2) = StartWorker(hopeless, FastWorkers() with { MaxLoadAttempts = 3 });
        var failed = AwaitState(router2, WorkerState.Failed);
        Assert.Contains("out of memory on 3 load attempts", failed.Error);
        Assert.Equal(3, hopeless.State.Loads);
        router2.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.Equal(3, hopeless.State.Loads);
    }

    [Fact]
    public void Should_count_the_preemptions_the_engine_reports()
    {
        var factory = new FakeEngineFactory(preemptAtSteps: new HashSet<int> { 2 });
        var (worker, router) = StartWorker(factory);
        AwaitState(router, WorkerState.Ready);

        worker.Tell(new RunQuery(1, Greedy("q", 3)), router);
        // The preempted step produced no token; the sequence is recomputed and still gives the same answer.
        Assert.Equal(FakeEngine.GreedyAnswer(new[] { 5, 6, 7 }, 3), Tokens(Collect(router, 1)));
        Assert.Equal(1, AwaitStatus(worker).Preemptions);
    }

    [Fact]
    public void Should_start_no_step_while_the_watchdog_holds_them_and_finish_the_query_once_it_lets_go()
    {
        var factory = new FakeEngineFactory();
        var (worker, router) = StartWorker(factory);
        AwaitState(router, WorkerState.Ready);

        worker.Tell(new ShedLoad(TimeSpan.FromHours(1)), router);
        worker.Tell(new RunQuery(1, Greedy("q", 3)), router);
        var meanwhile = router.ReceiveWhile(TimeSpan.FromMilliseconds(300), m => m);
        Assert.DoesNotContain(meanwhile, m => m is QueryProgress);

        worker.Tell(new ShedLoad(TimeSpan.Zero), router); // held long enough: step on
        Assert.Equal(FakeEngine.GreedyAnswer(new[] { 5, 6, 7 }, 3), Tokens(Collect(router, 1)));
    }

    [Fact]
    public void Should_stop_at_a_stop_string_without_sending_it()
    {
        var factory = new FakeEngineFactory(tokenizer: new LetterTokenizer());
        var (worker, router) = StartWorker(factory);
        AwaitState(router, WorkerState.Ready);
        var full = LetterTokenizer.TextOf(FakeEngine.GreedyAnswer(new[] { 5, 6, 7 }, 12));
        var stop = full.Substring(5, 2);
        var expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];

        worker.Tell(new RunQuery(1, Greedy("q", 12) with { StopStrings = new[] { stop } }), router);
        var events = Collect(router, 1);

        Assert.Equal(expected, string.Concat(events.OfType<TokensGenerated>().Select(t => t.Text)));
        Assert.Equal(FinishReason.Stop, Assert.IsType<QueryCompleted>(events[^1]).FinishReason);
    }

    [Fact]
    public void Should_leave_queries_the_engine_has_no_room_for_queued_in_it_first_come_first_served_and_drop_a_cancelled_one()
    {
        var factory = new FakeEngineFactory(kvCapacity: 200);
        var slow = new FaultInjectingEngineFactory(factory, new FaultOptions { StepDelayMs = 20 });
        var (worker, router) = StartWorker(slow);
        AwaitState(router, WorkerState.Ready);

        worker.Tell(new RunQuery(1, Greedy("q1", 97)), router);   // 100 KV tokens: runs, 100 are left
        worker.Tell(new RunQuery(2, Greedy("q2", 147)), router);  // 150: waits
        worker.Tell(new RunQuery(3, Greedy("q3", 17)), router);   // 20 would fit, but it is behind q2
        // Both wait in the engine, and the free KV the router sees counts them: 100 − 150 − 20, at least 0.
        AwaitState(router, WorkerState.Ready, s => s is { Running: 1, Queued: 2, KvFreeTokens: 0 });

        worker.Tell(new CancelRun(2), router);
        AwaitState(router, WorkerState.Ready, s => s is { Running: 2, Queued: 0, KvFreeTokens: 80 });
        Assert.Equal(FakeEngine.GreedyAnswer(new[] { 5, 6, 7 }, 17), Tokens(Collect(router, 3)));
        Assert.Equal(new long[] { 1 }, factory.Log.Removed);      // q2's sequence left the engine's queue
    }

    [Fact]
    public void Should_remove_a_cancelled_sequence_from_the_engine_at_the_next_step()
    {
        var factory = new FakeEngineFactory();
        var slow = new FaultInjectingEngineFactory(factory, new FaultOptions { StepDelayMs = 20 });
        var (worker, router) = StartWorker(slow);
        AwaitState(router, WorkerState.Ready);

        worker.Tell(new RunQuery(1, Greedy("q", 1000)), router);
        router.FishForMessage(m => m is QueryProgress { Event: TokensGenerated }, TimeSpan.FromSeconds(5));
        worker.Tell(new CancelRun(1), router);

        AwaitState(router, WorkerState.Ready, s => s.Running == 0 && s.KvFreeTokens == 4096);
        Assert.Single(factory.Log.Removed);
    }

    private WorkerStatus AwaitStatus(IActorRef worker) => worker.Ask<WorkerStatus>(GetWorkerStatus.Instance, TimeSpan.FromSeconds(5)).Result;
}
