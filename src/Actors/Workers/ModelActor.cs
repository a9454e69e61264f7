using Akka.Actor;
using Akka.Event;
using ActorQuery.Contracts;
using ActorQuery.Tokenization;

namespace ActorQuery.Actors.Workers;

/// <summary>
/// Owns one engine (weights, KV caches, device memory) on its own pinned thread. Loads it when its
/// <see cref="ModelSupervisor"/> says so, then runs generation as one <see cref="RunStep"/> self-message per
/// engine step, so that new queries, cancels and cleanup requests interleave with compute. Every query goes
/// straight to the engine, whose scheduler is the worker's one queue (it runs what fits, first come first served,
/// and keeps the rest waiting); the actor keeps only what maps sequences back to routers. An exception from a
/// step (out-of-memory that the engine's own preemption could not absorb, or a crash) fails the actor; its
/// supervisor restarts it, and <see cref="PreRestart"/> hands every query back to its router first.
/// </summary>
public sealed class ModelActor : ReceiveActor, IWithTimers
{
    // ---- Between the ModelActor and its ModelSupervisor (parent and child: never cross nodes, never serialized) ----
    internal sealed record Started : Akka.Actor.INoSerializationVerificationNeeded
    {
        public static readonly Started Instance = new();
    }

    internal sealed record LoadEngine(EngineLoadSettings Settings, TimeSpan Delay) : Akka.Actor.INoSerializationVerificationNeeded;

    internal sealed record Loaded(ModelDescription Model, int KvCapacityTokens, int KvBlockSize, EngineMemory Memory, EngineLoadSettings Settings) : Akka.Actor.INoSerializationVerificationNeeded;

    internal sealed record LoadFailed(string Reason, bool OutOfMemory) : Akka.Actor.INoSerializationVerificationNeeded;

    internal sealed record LoadReport(int Running, int Queued, int KvFreeTokens, int KvCapacityTokens, EngineMemory? Memory, int NewPreemptions) : Akka.Actor.INoSerializationVerificationNeeded
    {
        public long TensorBytes => Memory?.TotalBytes ?? 0;
    }

    /// <summary>From its supervisor (an admin's <see cref="CleanupWorker"/>): the watchdog's cleanup now, between two
    /// steps, then <see cref="WorkerCleanedUp"/> to <paramref name="ReplyTo"/>.</summary>
    internal sealed record CleanupNow(string Node, string State, IActorRef ReplyTo) : Akka.Actor.INoSerializationVerificationNeeded;

    /// <summary>The worker failed for good: hand everything back and stop.</summary>
    internal sealed record Retire : Akka.Actor.INoSerializationVerificationNeeded
    {
        public static readonly Retire Instance = new();
    }

    // ---- Self messages ----
    private sealed record RunStep : Akka.Actor.INoSerializationVerificationNeeded
    {
        public static readonly RunStep Instance = new();
    }

    private sealed record LoadNow(EngineLoadSettings Settings) : Akka.Actor.INoSerializationVerificationNeeded;

    /// <summary>The watchdog's hold on steps (<see cref="ShedLoad.HoldSteps"/>) may have lapsed: step if it has.</summary>
    private sealed record HoldLapsed : Akka.Actor.INoSerializationVerificationNeeded
    {
        public static readonly HoldLapsed Instance = new();
    }

    private sealed class Job(long ticket, IActorRef router, QueryRequest request)
    {
        public long Ticket { get; } = ticket;
        public IActorRef Router { get; } = router;
        public QueryRequest Request { get; } = request;
        public long SequenceId { get; init; }
        /// <summary>The engine holds it (running or waiting its turn); false only while the engine is loading.</summary>
        public bool InEngine { get; set; }
        /// <summary>Tokens of the completion so far, those of earlier attempts included (a resumed query).</summary>
        public int Tokens { get; set; } = request.GeneratedTokenIds.Count;
        public IStreamingDetokenizer? Detokenizer { get; set; }
        public StopStringMatcher Stops { get; } = new(request.StopStrings);
        /// <summary>Prompt tokens the engine took from its prefix cache for this query (reported with each token).</summary>
        public int CachedPromptTokens { get; set; }
        /// <summary>A resumed query's text that the client has not got yet (sent with the next token).</summary>
        public string Unsent { get; set; } = "";
        /// <summary>A resumed query's text that the client already has and the matcher will release again (dropped).</summary>
        public int AlreadySent { get; set; }

        /// <summary>What of <paramref name="visible"/> the client gets, after <see cref="Prime"/>.</summary>
        public string ToClient(string visible)
        {
            if (Unsent.Length > 0) { visible = Unsent + visible; Unsent = ""; }
            if (AlreadySent > 0)
            {
                int drop = Math.Min(AlreadySent, visible.Length);
                visible = visible[drop..];
                AlreadySent -= drop;
            }
            return visible;
        }

        /// <summary>
        /// A resumed query: the detokenizer and the stop-string matcher see the tokens already generated, so that a
        /// character or a stop string that spans the cut comes out whole or is cut; the client is sent only the text
        /// that follows what it has (<see cref="QueryRequest.GeneratedText"/>), never that text again.
        /// </summary>
        public void Prime()
        {
            var generated = Request.GeneratedTokenIds;
            if (generated.Count == 0 || Detokenizer is not { } detokenizer) return;
            var text = new System.Text.StringBuilder();
            foreach (var t in generated) text.Append(detokenizer.Push(t));
            var released = Stops.Push(text.ToString());
            var had = Request.GeneratedText;
            if (released.Length >= had.Length && released.StartsWith(had, StringComparison.Ordinal)) Unsent = released[had.Length..];
            else if (had.StartsWith(released, StringComparison.Ordinal)) AlreadySent = had.Length - released.Length;
        }
    }

    private readonly string _worker;
    /// <summary>"node/worker": what a completion names as the one that served it, unique in a cluster (worker names
    /// repeat on every node).</summary>
    private readonly string _servedBy;
    private readonly IEngineFactory _factory;
    private readonly ITokenizer? _tokenizer;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    // A worker has one queue, its engine's: every query goes straight to TryAdd, and the engine's scheduler runs it
    // or keeps it waiting, first come first served, until it has KV blocks and a place in the batch. _jobs maps the
    // engine's sequences back to their routers and streams (and holds what arrives while the engine loads, to add in
    // arrival order: sequence ids increase). The router keeps counts of what it sent, not the queries.
    private readonly Dictionary<long, Job> _jobs = new();   // by sequence id
    private IGenerationEngine? _engine;
    private long _nextSequenceId;
    private bool _stepScheduled;
    /// <summary>No step starts before this (the watchdog's hold above the shed mark).</summary>
    private DateTimeOffset _holdStepsUntil = DateTimeOffset.MinValue;
    private int _newPreemptions;
    private LoadReport? _lastReport;

    public ITimerScheduler Timers { get; set; } = null!;

    private readonly StepClock _clock;

    public ModelActor(string worker, string node, IEngineFactory factory, StepClock? clock = null)
    {
        _clock = clock ?? new StepClock();
        _worker = worker;
        _servedBy = $"{node}/{worker}";
        _factory = factory;
        _tokenizer = factory.Tokenizer;
        Loading();
    }

    /// <summary>Run it on a pinned dispatcher (<see cref="WorkerOptions.Dispatcher"/>): TorchSharp's dispose scopes are per thread.</summary>
    public static Props Props(string worker, string node, IEngineFactory factory, string dispatcher, StepClock? clock = null) =>
        Akka.Actor.Props.Create(() => new ModelActor(worker, node, factory, clock)).WithDispatcher(dispatcher);

    protected override void PreStart() => Context.Parent.Tell(Started.Instance);

    private void Loading()
    {
        Receive<LoadEngine>(m =>
        {
            if (m.Delay > TimeSpan.Zero) Timers.StartSingleTimer("load", new LoadNow(m.Settings), m.Delay);
            else Self.Tell(new LoadNow(m.Settings));
        });
        Receive<LoadNow>(m => Load(m.Settings));
        Receive<RunQuery>(m => Track(m));
        Receive<CancelRun>(m => Cancel(m.Ticket, Sender));
        Receive<CleanupMemory>(_ => NativeMemory.CollectAndTrim());
        Receive<CleanupNow>(m => m.ReplyTo.Tell(Measured(_worker, m, NativeMemory.CollectAndTrim)));
        Receive<ShedLoad>(_ => { });
        Receive<HoldLapsed>(_ => { });
        Receive<RunStep>(_ => _stepScheduled = false); // a step scheduled by the previous incarnation
        Receive<Retire>(_ => RetireNow());
    }

    private void Ready()
    {
        Receive<RunQuery>(m =>
        {
            AddToEngine(Track(m));
            Report();
            ScheduleStep();
        });
        Receive<RunStep>(_ => Step());
        Receive<CancelRun>(m =>
        {
            Cancel(m.Ticket, Sender);
            Report();
            ScheduleStep();
        });
        Receive<CleanupMemory>(_ =>
        {
            _engine!.ReleaseIdleMemory();
            Report();
        });
        Receive<CleanupNow>(m =>
        {
            m.ReplyTo.Tell(Measured(_worker, m, _engine!.ReleaseIdleMemory));
            Report();
        });
        Receive<ShedLoad>(m =>
        {
            int shed = _engine!.Shed();
            if (shed > 0)
            {
                _newPreemptions += shed;
                _log.Warning("{0}: memory near the limit; preempted the newest {1} sequence(s), to be recomputed", _worker, shed);
                Report();
            }
            HoldSteps(m.HoldSteps);
        });
        Receive<HoldLapsed>(_ =>
        {
            if (!Held) _log.Info("{0}: stepping again: memory is back under the shed mark, or held long enough", _worker);
            ScheduleStep();
        });
        Receive<Retire>(_ => RetireNow());
    }

    private void Load(EngineLoadSettings settings)
    {
        _log.Info("{0}: loading model ({1})", _worker, settings.Describe());
        try
        {
            _engine = _factory.Load(settings);
        }
        catch (Exception e)
        {
            _engine = null;
            NativeMemory.CollectAndTrim();
            bool oom = OutOfMemory.IsOutOfMemory(e);
            _log.Error(e, "{0}: model failed to load{1}", _worker, oom ? " (out of memory)" : "");
            Context.Parent.Tell(new LoadFailed($"{e.GetType().Name}: {FirstLine(e)}", oom));
            return;
        }
        Context.Parent.Tell(new Loaded(_engine.Model, _engine.KvCapacityTokens, _engine.KvBlockSize, _engine.MemoryUsage, settings));
        Become(Ready);
        foreach (var job in _jobs.Values.Where(j => !j.InEngine).OrderBy(j => j.SequenceId).ToList()) AddToEngine(job);
        Report();
        ScheduleStep();
    }

    private void Step()
    {
        _stepScheduled = false;
        var engine = _engine!;
        if (!engine.HasPendingWork)
        {
            Report();
            return;
        }
        if (Held)
        {
            ScheduleStep(); // a step scheduled before the hold came: it waits for the hold to lapse
            return;
        }
        // An exception here (OOM the engine could not absorb by preemption, or a crash) fails this actor:
        // the supervisor decides, PreRestart hands the queries back.
        StepResult result;
        _clock.Start();
        try { result = engine.Step(); }
        finally { _clock.Stop(); }
        if (result.Preempted > 0)
        {
            _newPreemptions += result.Preempted;
            _log.Warning("{0}: out of memory in a step; the engine preempted {1} sequence(s) and will recompute them", _worker, result.Preempted);
        }
        foreach (var update in result.Updates)
            if (_jobs.TryGetValue(update.SequenceId, out var job)) Deliver(job, update);
        Report();
        ScheduleStep();
    }

    private void Deliver(Job job, SequenceUpdate update)
    {
        job.Tokens++;
        job.CachedPromptTokens = update.CachedPromptTokens;
        var text = job.Detokenizer?.Push(update.TokenId) ?? "";
        var visible = job.ToClient(job.Stops.Push(text));
        var logprobs = update.Logprob is null ? null : new[] { update.Logprob };
        FinishReason? finish = null;
        if (job.Stops.Stopped)
        {
            if (update.Finished is null) _engine!.Remove(job.SequenceId);
            finish = FinishReason.Stop;
        }
        else if (update.Finished is { } f)
        {
            var tail = job.Detokenizer?.Flush() ?? "";
            visible += job.ToClient(job.Stops.Push(tail));
            if (job.Stops.Stopped) f = FinishReason.Stop;
            else visible += job.ToClient(job.Stops.Flush());
            finish = f;
        }
        var id = job.Request.QueryId;
        job.Router.Tell(new QueryProgress(job.Ticket, new TokensGenerated(id, visible, new[] { update.TokenId }, logprobs)));
        if (finish is { } reason)
        {
            _jobs.Remove(job.SequenceId);
            job.Router.Tell(new QueryProgress(job.Ticket,
                new QueryCompleted(id, reason, job.Request.PromptTokenIds.Count, job.Tokens, Cached: false, _servedBy, job.CachedPromptTokens)));
        }
    }

    /// <summary>Gives a query its sequence id and remembers it, until it completes, is cancelled or is handed back.</summary>
    private Job Track(RunQuery m)
    {
        var job = new Job(m.Ticket, Sender, m.Request) { SequenceId = _nextSequenceId++ };
        _jobs[job.SequenceId] = job;
        return job;
    }

    /// <summary>Hands a job to the engine, which runs it or queues it; refuses it if it is invalid or could never fit.</summary>
    private void AddToEngine(Job job)
    {
        var engine = _engine!;
        AddResult result;
        try
        {
            job.Request.Sampling.Validate();
            result = engine.TryAdd(new GenerationRequest(job.SequenceId, job.Request.PromptTokenIds, job.Request.Sampling)
            {
                Generated = job.Request.GeneratedTokenIds,
            });
        }
        catch (ArgumentException e)
        {
            _jobs.Remove(job.SequenceId);
            Reply(job, new QueryRefused(job.Request.QueryId, RefusalReason.InvalidRequest, e.Message, null));
            return;
        }
        if (result.Outcome == AddOutcome.TooLarge)
        {
            _jobs.Remove(job.SequenceId);
            Reply(job, new QueryRefused(job.Request.QueryId, RefusalReason.TooLarge,
                result.Reason ?? $"needs {result.TokensNeeded} KV tokens; the model holds {engine.KvCapacityTokens}", null));
            return;
        }
        job.InEngine = true;
        job.Detokenizer = _tokenizer?.CreateStreamingDetokenizer(job.Request.SkipSpecialTokens);
        job.Prime();
    }

    private static void Reply(Job job, QueryEvent e) => job.Router.Tell(new QueryProgress(job.Ticket, e));

    private void ScheduleStep()
    {
        if (_stepScheduled || _engine is not { HasPendingWork: true }) return;
        var held = _holdStepsUntil - Context.System.Scheduler.Now;
        if (held > TimeSpan.Zero)
        {
            Timers.StartSingleTimer("hold", HoldLapsed.Instance, held);
            return;
        }
        _stepScheduled = true;
        Self.Tell(RunStep.Instance);
    }

    private bool Held => _holdStepsUntil > Context.System.Scheduler.Now;

    /// <summary>Starts no step for <paramref name="hold"/> from now (renewing a hold in force); zero ends a hold at once.</summary>
    private void HoldSteps(TimeSpan hold)
    {
        bool was = Held;
        _holdStepsUntil = hold > TimeSpan.Zero ? Context.System.Scheduler.Now + hold : DateTimeOffset.MinValue;
        if (!was && Held) _log.Warning("{0}: memory near the limit; holding steps while it stays there", _worker);
        ScheduleStep();
    }

    /// <summary>Drops the sender's job with this ticket (tickets are unique per router only), from the engine too,
    /// whether it runs or waits there.</summary>
    private void Cancel(long ticket, IActorRef router)
    {
        var job = _jobs.Values.FirstOrDefault(j => j.Ticket == ticket && j.Router.Equals(router));
        if (job is null) return;
        if (job.InEngine) _engine!.Remove(job.SequenceId);
        _jobs.Remove(job.SequenceId);
    }

    private void Report()
    {
        int running = 0, queued = _jobs.Count, kvFree = 0, kvCap = 0;   // no engine: all are waiting for it to load
        EngineMemory? memory = null;
        if (_engine is { } e)
        {
            (running, queued) = (e.RunningSequences, e.WaitingSequences);
            kvCap = e.KvCapacityTokens;
            kvFree = e.KvFreeTokens;   // already less the KV need of the sequences waiting in it
            memory = e.MemoryUsage;
        }
        var report = new LoadReport(running, queued, kvFree, kvCap, memory, _newPreemptions);
        if (_lastReport == report && _newPreemptions == 0) return;
        _lastReport = report;
        _newPreemptions = 0;
        Context.Parent.Tell(report);
    }

    /// <summary>Gives every query back to its router (it decides: retry elsewhere, or fail with the reason).</summary>
    private void ReturnAll(string reason)
    {
        foreach (var job in _jobs.Values.OrderBy(j => j.SequenceId))
            job.Router.Tell(new QueryReturned(job.Ticket, reason, job.Tokens));
        _jobs.Clear();
    }

    private void DisposeEngine()
    {
        var engine = _engine;
        _engine = null;
        if (engine is null) return;
        try { engine.Dispose(); }
        catch (Exception e) { _log.Warning("{0}: disposing the engine failed: {1}", _worker, e.Message); }
    }

    /// <summary>Runs <paramref name="cleanup"/> between two readings of this process's memory.</summary>
    internal static WorkerCleanedUp Measured(string worker, CleanupNow m, Action cleanup)
    {
        long residentBefore = NativeMemory.ResidentBytes(), managedBefore = GC.GetTotalMemory(false);
        cleanup();
        return new WorkerCleanedUp(worker, m.Node, Environment.ProcessId, m.State, residentBefore, NativeMemory.ResidentBytes(),
            managedBefore, GC.GetTotalMemory(false));
    }

    private void RetireNow()
    {
        ReturnAll($"worker {_worker} failed");
        Context.Stop(Self);
    }

    protected override void PreRestart(Exception reason, object message)
    {
        bool oom = OutOfMemory.IsOutOfMemory(reason);
        ReturnAll(oom ? $"model ran out of memory ({FirstLine(reason)}); worker {_worker} is restarting"
                      : $"model failed ({reason.GetType().Name}: {FirstLine(reason)}); worker {_worker} is restarting");
        // Restart with cleanup: every tensor and KV cache goes with the engine, then GC and malloc_trim.
        DisposeEngine();
        NativeMemory.CollectAndTrim();
        base.PreRestart(reason, message);
    }

    /// <summary>libtorch's messages carry a C++ stack trace after the first line; clients and statuses get the first line.</summary>
    internal static string FirstLine(Exception e)
    {
        var m = e.Message;
        int nl = m.IndexOf('\n');
        return (nl < 0 ? m : m[..nl]).Trim();
    }

    protected override void PostStop()
    {
        ReturnAll($"worker {_worker} stopped");
        DisposeEngine();
    }
}
