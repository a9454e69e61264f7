using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using ActorQuery.Actors.Cluster;
using static Akka.Cluster.ClusterEvent;

namespace ActorQuery.Actors.Workers;

/// <summary>
/// One per node that runs its model workers in child processes. It starts <see cref="WorkerProcessOptions.Count"/>
/// processes (each a cluster node with the worker role that joins this one over loopback remoting) and supervises them:
/// <list type="bullet">
/// <item>a process's exit is seen at once (the process, not the failure detector's seconds): its member is downed, its
///   workers leave the routing and their queries resume elsewhere or on the restarted process (the router holds them,
///   <see cref="WorkersExpected"/>), and it is started again after the workers' backoff (<see cref="WorkerOptions"/>);</item>
/// <item>a process that ends before any worker was ready <see cref="WorkerProcessOptions.MaxFailedStarts"/> times in a row
///   is given up (failed, with the reason); one that fails its very first start with exit code 2 (its plan or options were
///   refused) ends the node the same way (<c>onStartRefused</c>), so that a plan that cannot fit is one line and exit code 2;</item>
/// <item>recycling: a process whose workers report memory pressure (its watchdog paused: memory past its plan) for
///   <see cref="WorkerProcessOptions.RecycleAfter"/>, or on request (<see cref="RecycleWorkerProcess"/>), leaves the
///   routing, its queries move by resume, and it is stopped gracefully (SIGTERM, then SIGKILL after the grace) and
///   started again at once;</item>
/// <item>a process the cluster finds unreachable for <see cref="WorkerProcessOptions.UnreachableKillAfter"/> (hung) is killed.</item>
/// </list>
/// It learns its processes' workers from their published load (Distributed Pub/Sub) and /health reads it
/// (<see cref="GetWorkerProcesses"/>).
/// </summary>
public sealed class WorkerProcessSupervisor : ReceiveActor, IWithTimers
{
    private sealed record Exited(int Id, int Generation, WorkerProcessExit Exit) : INoSerializationVerificationNeeded;
    private sealed record StartAgain(int Id, int Generation) : INoSerializationVerificationNeeded;
    private sealed record KillIfRunning(int Id, int Generation, string Why) : INoSerializationVerificationNeeded;
    private sealed record CheckUnreachable(int Id, int Generation) : INoSerializationVerificationNeeded;
    private sealed record StartAll : INoSerializationVerificationNeeded
    {
        public static readonly StartAll Instance = new();
    }

    private sealed class Child(int id)
    {
        public int Id { get; } = id;
        public string Source => $"worker-process-{Id}";
        public IWorkerProcess? Process { get; set; }
        public Address? Address { get; set; }
        public int Generation { get; set; }
        public string State { get; set; } = "starting";
        public int Restarts { get; set; }
        public DateTimeOffset? StartedAt { get; set; }
        public bool ReadySinceStart { get; set; }
        public bool EverReady { get; set; }
        public int FailedStarts { get; set; }
        public int ConsecutiveFailures { get; set; }
        public string? RecycleReason { get; set; }
        /// <summary>Recycled because every worker in it failed (a failed start when none was ready).</summary>
        public bool WorkersFailed { get; set; }
        public DateTimeOffset? PressureSince { get; set; }
        public WorkerProcessExitInfo? LastExit { get; set; }
        public string? Error { get; set; }
        public Dictionary<string, WorkerStatus> Workers { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, IActorRef> WorkerRefs { get; } = new(StringComparer.Ordinal);
    }

    private readonly WorkerProcessOptions _options;
    private readonly WorkerOptions _backoff;
    private readonly IWorkerProcessLauncher _launcher;
    private readonly IActorRef _router;
    private readonly IActorRef _directory;
    private readonly Action<Address> _down;
    private readonly Action<string> _onStartRefused;
    private readonly bool _subscribe;
    private readonly IActorRef? _reportTo;
    private bool _stopping, _drainingAll;
    private WorkerProcessesChanged? _reported;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Random _random = new();
    private readonly List<Child> _children = new();

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="down">Downs a member of the cluster (Akka.Cluster's Down).</param>
    /// <param name="onStartRefused">The first start of a process was refused with exit code 2; the node should end with that line.</param>
    /// <param name="subscribe">Subscribe to the workers' published load and to reachability (off in specs that send those themselves).</param>
    public WorkerProcessSupervisor(WorkerProcessOptions options, WorkerOptions backoff, IWorkerProcessLauncher launcher,
        IActorRef router, IActorRef directory, Action<Address> down, Action<string> onStartRefused, bool subscribe, IActorRef? reportTo = null)
    {
        _reportTo = reportTo;
        _options = options;
        _backoff = backoff;
        _launcher = launcher;
        _router = router;
        _directory = directory;
        _down = down;
        _onStartRefused = onStartRefused;
        _subscribe = subscribe;
        for (int i = 0; i < options.Count; i++) _children.Add(new Child(options.FirstId + i));

        Receive<StartAll>(_ =>
        {
            foreach (var c in _children.Where(c => c.Process is null && c.Generation == 0)) Start(c);
        });
        Receive<Exited>(OnExited);
        Receive<StartAgain>(m =>
        {
            var c = ChildById(m.Id);
            if (c.Generation == m.Generation && c.Process is null && c.State == "restarting" && !_stopping) Start(c);
        });
        Receive<KillIfRunning>(m =>
        {
            var c = ChildById(m.Id);
            if (c.Generation != m.Generation || c.Process is null) return;
            _log.Warning("worker process {0} (pid {1}): {2}; killing it", c.Id, c.Process.Pid, m.Why);
            c.Process.Kill();
        });
        Receive<WorkerLoadPublished>(OnPublished);
        Receive<UnreachableMember>(m =>
        {
            if (ChildAt(m.Member.Address) is { } c)
                Timers.StartSingleTimer($"unreachable-{c.Id}", new CheckUnreachable(c.Id, c.Generation), _options.UnreachableKillAfter);
        });
        Receive<ReachableMember>(m =>
        {
            if (ChildAt(m.Member.Address) is { } c) Timers.Cancel($"unreachable-{c.Id}");
        });
        Receive<CheckUnreachable>(m =>
        {
            var c = ChildById(m.Id);
            if (c.Generation != m.Generation || c.Process is null) return;
            Recycle(c, $"unreachable for {_options.UnreachableKillAfter.TotalSeconds:0.#}s");
            c.Process?.Kill();
        });
        Receive<IMemberEvent>(_ => { });
        Receive<SubscribeAck>(_ => { });
        Receive<GetWorkerProcesses>(_ => Sender.Tell(View()));
        Receive<DrainWorkerProcesses>(_ =>
        {
            _drainingAll = true;
            foreach (var w in _children.SelectMany(c => c.WorkerRefs.Values)) w.Tell(DrainWorker.Instance);
        });
        Receive<StopWorkerProcesses>(_ =>
        {
            _stopping = true;
            foreach (var c in _children)
            {
                Timers.Cancel($"start-{c.Id}");
                if (c.Process is null) c.State = "stopped";
                else Recycle(c, "the model is unloaded");
            }
            Report();
        });
        Receive<RecycleWorkerProcess>(m =>
        {
            var c = Find(m.Id);
            if (c is null)
            {
                Sender.Tell(new RecycleRefused($"no worker process '{m.Id}' (processes: {string.Join(", ", _children.Select(x => x.Id))}; "
                    + $"workers: {string.Join(", ", _children.SelectMany(x => x.Workers.Keys))})", NotFound: true));
                return;
            }
            if (c.Process is null || c.State is "recycling" || _stopping)
            {
                Sender.Tell(new RecycleRefused($"worker process {c.Id} is {c.State}", NotFound: false));
                return;
            }
            Recycle(c, m.Reason);
            Sender.Tell(new RecycleStarted(Info(c)));
        });
    }

    public static Props Props(WorkerProcessOptions options, WorkerOptions backoff, IWorkerProcessLauncher launcher, IActorRef router,
        IActorRef directory, Action<Address> down, Action<string> onStartRefused, bool subscribe = true, IActorRef? reportTo = null) =>
        Akka.Actor.Props.Create(() => new WorkerProcessSupervisor(options, backoff, launcher, router, directory, down, onStartRefused, subscribe, reportTo));

    protected override void PreStart()
    {
        if (!_subscribe)
        {
            Self.Tell(StartAll.Instance);
            return;
        }
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(ClusterTopics.Workers, Self));
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        cluster.Subscribe(Self, InitialStateAsEvents, typeof(IReachabilityEvent));
        // The processes join this node: start them once it is a member, or their first join attempts go unanswered.
        var self = Self;
        cluster.RegisterOnMemberUp(() => self.Tell(StartAll.Instance));
    }

    protected override void PostStop()
    {
        if (_subscribe) Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        // The node is stopping: its processes stop with it (they also stop by themselves when their parent's pipe closes).
        foreach (var c in _children) c.Process?.Terminate();
    }

    private void Start(Child c)
    {
        c.Generation++;
        c.Workers.Clear();
        c.WorkerRefs.Clear();
        c.ReadySinceStart = false;
        c.PressureSince = null;
        c.RecycleReason = null;
        c.WorkersFailed = false;
        try
        {
            var p = _launcher.Start(c.Id);
            c.Process = p;
            c.Address = p.Address;
            c.State = "starting";
            c.StartedAt = DateTimeOffset.UtcNow;
            _router.Tell(new WorkersExpected(c.Source, p.Address, true, $"worker process {c.Id} (pid {p.Pid}) is starting", _options.Model));
            _log.Info("worker process {0} started: pid {1}, {2}", c.Id, p.Pid, p.Address);
            int generation = c.Generation;
            p.Exited.PipeTo(Self, success: e => new Exited(c.Id, generation, e),
                failure: e => new Exited(c.Id, generation, new WorkerProcessExit(null, null, false, e.Message)));
        }
        catch (Exception e)
        {
            _log.Error("worker process {0} could not start: {1}", c.Id, e.Message);
            Self.Tell(new Exited(c.Id, c.Generation, new WorkerProcessExit(null, null, false, e.Message)));
        }
    }

    private void OnExited(Exited m)
    {
        var c = ChildById(m.Id);
        if (c.Generation != m.Generation) return;
        var p = c.Process;
        var address = c.Address;
        c.Process = null;
        Timers.Cancel($"unreachable-{c.Id}");
        Timers.Cancel($"kill-{c.Id}");
        string reason = c.RecycleReason is { } recycled
            ? $"worker process {c.Id} was recycled ({recycled})"
            : $"worker process {c.Id} (pid {p?.Pid}) {m.Exit.Describe()}";
        c.LastExit = new WorkerProcessExitInfo(m.Exit.Code, m.Exit.Signal, m.Exit.OomKilled, reason, DateTimeOffset.UtcNow);
        c.Workers.Clear();
        c.WorkerRefs.Clear();

        if (_stopping)
        {
            // Unloaded: not started again; its queries wait for the model's next load or resume elsewhere.
            c.State = "stopped";
            _router.Tell(new WorkersExpected(c.Source, null, false, reason, _options.Model));
            if (address is not null)
            {
                _directory.Tell(new WorkerProcessLost(address, reason));
                _down(address);
            }
            _log.Info("{0}", reason);
            Report();
            return;
        }
        bool refused = m.Exit.Code == 2 && !c.EverReady && c.Restarts == 0 && c.RecycleReason is null;
        bool failedStart = !c.ReadySinceStart && (c.RecycleReason is null || c.WorkersFailed);
        c.FailedStarts = failedStart ? c.FailedStarts + 1 : 0;
        bool giveUp = refused || c.FailedStarts >= _options.MaxFailedStarts;
        // The router holds this process's queries through the restart; only a process given up lets them go.
        _router.Tell(new WorkersExpected(c.Source, null, !giveUp, reason, _options.Model));
        if (address is not null)
        {
            _directory.Tell(new WorkerProcessLost(address, reason));
            _down(address);
        }
        if (giveUp)
        {
            c.State = "failed";
            c.Error = refused ? m.Exit.Detail ?? reason
                : $"{reason}; it ended before any worker was ready {c.FailedStarts} times in a row, so it is not started again";
            _log.Error("worker process {0} failed: {1}", c.Id, c.Error);
            if (refused) _onStartRefused(m.Exit.Detail ?? reason);
            Report();
            return;
        }

        TimeSpan delay;
        if (c.RecycleReason is not null && !c.WorkersFailed) delay = TimeSpan.Zero;
        else
        {
            bool servedLong = c.StartedAt is { } started && DateTimeOffset.UtcNow - started >= _backoff.BackoffResetAfter && c.ReadySinceStart;
            c.ConsecutiveFailures = servedLong ? 1 : c.ConsecutiveFailures + 1;
            delay = RestartPolicy.Backoff(_backoff, c.ConsecutiveFailures, _random.NextDouble());
        }
        c.State = "restarting";
        c.Restarts++;
        if (c.RecycleReason is null) _log.Warning("{0}; starting it again in {1:0.###}s (restart {2})", reason, delay.TotalSeconds, c.Restarts);
        else _log.Info("{0}; starting it again (restart {1})", reason, c.Restarts);
        Timers.StartSingleTimer($"start-{c.Id}", new StartAgain(c.Id, c.Generation), delay);
        Report();
    }

    private void OnPublished(WorkerLoadPublished m)
    {
        if (ChildAt(m.Worker.Path.Address) is not { Process: not null } c) return;
        c.Workers[m.Status.Worker] = m.Status;
        if (_drainingAll && !c.WorkerRefs.ContainsKey(m.Status.Worker)) m.Worker.Tell(DrainWorker.Instance);
        c.WorkerRefs[m.Status.Worker] = m.Worker;
        Report();
        if (m.Status.State == WorkerState.Ready)
        {
            c.ReadySinceStart = c.EverReady = true;
            c.FailedStarts = 0;
            if (c.State == "starting") c.State = "ready";
        }
        if (c.Workers.Count > 0 && c.Workers.Values.All(w => w.State == WorkerState.Failed) && c.State is "starting" or "ready")
        {
            // Its workers gave up (a model that cannot load, a hung step): a fresh process is the next try.
            c.WorkersFailed = true;
            Recycle(c, $"every worker in it failed: {c.Workers.Values.First().Error}");
            return;
        }
        if (c.State != "ready") return;
        var pressure = c.Workers.Values.Select(w => w.MemoryPressure).FirstOrDefault(p => p is not null);
        if (pressure is null) { c.PressureSince = null; return; }
        var now = DateTimeOffset.UtcNow;
        c.PressureSince ??= now;
        if (_options.RecycleAfter > TimeSpan.Zero && now - c.PressureSince >= _options.RecycleAfter)
            Recycle(c, $"memory past its plan for {(now - c.PressureSince.Value).TotalSeconds:0.#}s: {pressure}");
    }

    /// <summary>Takes the process out of the routing (its queries resume now), then stops it gracefully.</summary>
    private void Recycle(Child c, string reason)
    {
        if (c.Process is not { } p || c.State == "recycling") return;
        c.RecycleReason = reason;
        c.State = "recycling";
        _log.Warning("worker process {0} (pid {1}): recycling it ({2}); its queries resume", c.Id, p.Pid, reason);
        _router.Tell(new WorkersExpected(c.Source, null, !_stopping, $"worker process {c.Id} is being recycled", _options.Model));
        if (c.Address is { } address) _directory.Tell(new WorkerProcessLost(address, $"worker process {c.Id} is being recycled ({reason})"));
        p.Terminate();
        Timers.StartSingleTimer($"kill-{c.Id}", new KillIfRunning(c.Id, c.Generation,
            $"still running {_options.TerminateGrace.TotalSeconds:0.#}s after SIGTERM"), _options.TerminateGrace);
    }

    private Child ChildById(int id) => _children[id - _options.FirstId];

    /// <summary>Tells <c>reportTo</c> (a model pool) the processes' sum when it changed.</summary>
    private void Report()
    {
        if (_reportTo is null) return;
        var workers = _children.SelectMany(c => c.Workers.Values).ToList();
        var now = new WorkerProcessesChanged(_options.Model,
            Ready: workers.Any(w => w.State == WorkerState.Ready),
            Busy: workers.Any(w => w.Running + w.Queued > 0),
            Failed: _children.All(c => c.State == "failed"),
            Stopped: _stopping && _children.All(c => c.Process is null),
            Error: _children.Select(c => c.Error ?? c.LastExit?.Reason).FirstOrDefault(e => e is not null),
            ResidentBytes: null);
        // A change of resident memory alone is no news; it is read from /proc only for a report that goes out, since this
        // runs at every published load.
        if (_reported is { } before && before with { ResidentBytes = null } == now) return;
        now = now with
        {
            ResidentBytes = _children.Any(c => c.Process is not null) ? _children.Sum(c => c.Process?.ResidentBytes ?? 0) : null,
        };
        _reported = now;
        _reportTo.Tell(now);
    }

    private Child? ChildAt(Address address) => _children.FirstOrDefault(c => c.Process is not null && address.Equals(c.Address));

    private Child? Find(string id) =>
        int.TryParse(id, out int n) && n >= _options.FirstId && n < _options.FirstId + _children.Count ? ChildById(n)
        : _children.FirstOrDefault(c => c.Workers.ContainsKey(id));

    private WorkerProcessesView View() => new(_children.Select(Info).ToList());

    private static WorkerProcessInfo Info(Child c) => new(
        c.Id, c.Process?.Pid, c.State, c.Restarts, c.Address?.ToString(), c.Process?.Url, c.StartedAt, c.Process?.ResidentBytes,
        c.Workers.Keys.Order(StringComparer.Ordinal).ToList(), c.LastExit, c.Error);
}
