using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using ActorQuery.Actors.Cluster;
using ActorQuery.Contracts;
using static Akka.Cluster.ClusterEvent;

namespace ActorQuery.Actors.Workers;

/// <summary>
/// One per node that serves several models: it loads a model when a query asks for it, unloads it when it has been idle
/// past its keep-alive, and keeps the loaded models inside the node's budget. Each loaded model runs in worker processes
/// of its own (a <see cref="WorkerProcessSupervisor"/> child, made by the Host's factory), so an unload gives its memory
/// back to the kernel whole, and the model plans inside exactly its reservation.
/// <list type="bullet">
/// <item>State of each model: available → loading → ready → unloading → available, or failed with the reason (a later
///   query tries again).</item>
/// <item>A load that does not fit unloads the least recently used idle models first (evictions); a model with live
///   queries or a pinned one is never evicted: the load waits for them, its queries inside their deadlines. When nothing
///   can ever make room (the model alone exceeds the budget, or the rest is pinned), its queries are refused with the
///   reason and a Retry-After.</item>
/// <item>Busy: the router's count of the model's live queries (<see cref="ModelActivity"/>), and its workers' own reports
///   (queries from gateways elsewhere), which count for <see cref="ModelPoolOptions.IdleGrace"/> after they stop.</item>
/// </list>
/// It answers for its processes the way one supervisor does (<see cref="GetWorkerProcesses"/>, <see cref="RecycleWorkerProcess"/>).
/// </summary>
public sealed class ModelPool : ReceiveActor, IWithTimers
{
    private sealed record Tick : INoSerializationVerificationNeeded
    {
        public static readonly Tick Instance = new();
    }

    private sealed record PublishCatalog : INoSerializationVerificationNeeded
    {
        public static readonly PublishCatalog Instance = new();
    }

    private sealed record LoadPinned : INoSerializationVerificationNeeded
    {
        public static readonly LoadPinned Instance = new();
    }

    private sealed class Model(ModelPoolEntry entry, int index)
    {
        public ModelPoolEntry Entry { get; } = entry;
        public int Index { get; } = index;
        public string State { get; set; } = "available";
        public string? Error { get; set; }
        public IActorRef? Supervisor { get; set; }
        /// <summary>Live queries of it, summed over the routers that sent them (this node's, and others').</summary>
        public int Live => LiveByRouter.Values.Sum();
        public Dictionary<IActorRef, int> LiveByRouter { get; } = new();
        public bool WorkersBusy { get; set; }
        public DateTimeOffset? BusyUntil { get; set; }
        public DateTimeOffset? LastUsed { get; set; }
        public DateTimeOffset? LoadedAt { get; set; }
        public DateTimeOffset? LoadStartedAt { get; set; }
        /// <summary>Set by a request's keep_alive; null: the entry's.</summary>
        public TimeSpan? KeepAliveOverride { get; set; }
        public bool Wanted { get; set; }
        /// <summary>Since when it waits for room: waiting models load in this order, so that none is passed over for ever.</summary>
        public DateTimeOffset? WaitingSince { get; set; }
        /// <summary>Chosen to make room while busy: its workers take no new query, and it unloads once they are idle.</summary>
        public bool Draining { get; set; }
        /// <summary>Its workers ran a query since it was loaded: only then may it be drained for another model (a model
        /// drained before its waiting queries reached it would serve nothing, and the pool would only thrash).</summary>
        public bool ServedSinceLoad { get; set; }
        public long? ResidentBytes { get; set; }
        public long Loads { get; set; }
        public long Unloads { get; set; }
        public long Evictions { get; set; }
        public double LoadSeconds { get; set; }
        public bool Holds => State is "loading" or "ready" or "unloading";
        public TimeSpan? KeepAlive => KeepAliveOverride ?? (Entry.Pinned ? null : Entry.KeepAlive);
        public bool Pinned => Entry.Pinned || KeepAliveOverride == Timeout.InfiniteTimeSpan;
    }

    private readonly ModelPoolOptions _options;
    private readonly Func<ModelPoolEntry, int, IActorRef, Props> _supervisor;
    private readonly IActorRef _router;
    private readonly bool _subscribe;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<Model> _models;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="supervisor">Props of the worker process supervisor of a model: its entry, the id of its first process,
    /// and the pool to report to.</param>
    /// <param name="subscribe">Subscribe to the workers' published load and to reachability, passed on to the supervisors
    /// (off in specs that send those themselves).</param>
    public ModelPool(ModelPoolOptions options, Func<ModelPoolEntry, int, IActorRef, Props> supervisor, IActorRef router, bool subscribe)
    {
        _options = options;
        _supervisor = supervisor;
        _router = router;
        _subscribe = subscribe;
        _models = options.Models.Select((e, i) => new Model(e, i)).ToList();

        Receive<ModelActivity>(OnActivity);
        Receive<WorkerProcessesChanged>(OnProcesses);
        Receive<Tick>(_ => OnTick());
        Receive<PublishCatalog>(_ => DistributedPubSub.Get(Context.System).Mediator.Tell(
            new Publish(ClusterTopics.Models, new ModelCatalogPublished(Self, _models.Select(m => m.Entry.Name).ToList()))));
        Receive<LoadPinned>(_ =>
        {
            foreach (var m in _models.Where(m => m.Entry.Pinned))
            {
                m.Wanted = true;
                if (TryLoad(m, "pinned") is { } why) _log.Error("pinned model {0} cannot load: {1}", m.Entry.Name, why);
            }
        });
        Receive<LoadModel>(m =>
        {
            if (Find(m.Model) is not { } model) { Sender.Tell(NotFound(m.Model)); return; }
            model.Wanted = true;
            string? refused = TryLoad(model, "requested by POST /admin/models/{name}/load");
            Sender.Tell(refused is null ? new ModelPoolAnswer(200, null, Info(model)) : new ModelPoolAnswer(503, refused, Info(model)));
        });
        Receive<UnloadModel>(m =>
        {
            if (Find(m.Model) is not { } model) { Sender.Tell(NotFound(m.Model)); return; }
            if (model.State is "available" or "failed" or "unloading") { Sender.Tell(new ModelPoolAnswer(200, null, Info(model))); return; }
            if (IsBusy(model, DateTimeOffset.UtcNow))
            {
                Sender.Tell(new ModelPoolAnswer(409, $"model '{model.Entry.Name}' runs {model.Live} quer{(model.Live == 1 ? "y" : "ies")}; unload it once they end", Info(model)));
                return;
            }
            model.Wanted = false;
            Unload(model, "requested by POST /admin/models/{name}/unload");
            Sender.Tell(new ModelPoolAnswer(200, null, Info(model)));
        });
        Receive<GetModelPool>(_ => Sender.Tell(View()));
        Receive<GetWorkerProcesses>(_ =>
        {
            var asks = _models.Where(m => m.Supervisor is not null)
                .Select(m => m.Supervisor!.Ask<WorkerProcessesView>(GetWorkerProcesses.Instance, TimeSpan.FromSeconds(3))).ToList();
            Task.WhenAll(asks).ContinueWith(t => t.IsCompletedSuccessfully
                    ? new WorkerProcessesView(t.Result.SelectMany(v => v.Processes).OrderBy(p => p.Id).ToList())
                    : new WorkerProcessesView(Array.Empty<WorkerProcessInfo>()), TaskScheduler.Default)
                .PipeTo(Sender);
        });
        Receive<RecycleWorkerProcess>(m =>
        {
            var supervisors = _models.Where(x => x.Supervisor is not null).Select(x => x.Supervisor!).ToList();
            RecycleInAny(supervisors, m).PipeTo(Sender);
        });
        // Published loads and reachability reach every model's supervisor, which keeps those of its own processes.
        Receive<WorkerLoadPublished>(Broadcast);
        Receive<IReachabilityEvent>(Broadcast);
        Receive<IMemberEvent>(_ => { });
        Receive<SubscribeAck>(_ => { });
    }

    public static Props Props(ModelPoolOptions options, Func<ModelPoolEntry, int, IActorRef, Props> supervisor, IActorRef router, bool subscribe = true) =>
        Akka.Actor.Props.Create(() => new ModelPool(options, supervisor, router, subscribe));

    protected override void PreStart()
    {
        _router.Tell(new ModelCatalog(Self, _models.Select(m => m.Entry.Name).ToList()));
        if (_subscribe)
        {
            DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(ClusterTopics.Workers, Self));
            Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, InitialStateAsEvents, typeof(IReachabilityEvent));
        }
        Timers.StartPeriodicTimer("tick", Tick.Instance, _options.Tick);
        if (_subscribe) Timers.StartPeriodicTimer("catalog", PublishCatalog.Instance, TimeSpan.Zero, _options.CatalogInterval);
        // Worker processes join this node: start the pinned ones once it is a member, or their first joins go unanswered.
        var self = Self;
        if (_subscribe) Akka.Cluster.Cluster.Get(Context.System).RegisterOnMemberUp(() => self.Tell(LoadPinned.Instance));
        else Self.Tell(LoadPinned.Instance);
    }

    protected override void PostStop()
    {
        if (_subscribe) Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
    }

    private void Broadcast(object message)
    {
        foreach (var m in _models)
            m.Supervisor?.Forward(message);
    }

    private static async Task<object> RecycleInAny(IReadOnlyList<IActorRef> supervisors, RecycleWorkerProcess m)
    {
        RecycleRefused? refused = null;
        foreach (var s in supervisors)
        {
            var reply = await s.Ask<object>(m, TimeSpan.FromSeconds(3)).ConfigureAwait(false);
            if (reply is RecycleStarted) return reply;
            if (reply is RecycleRefused { NotFound: false } r) return r;
            refused ??= reply as RecycleRefused;
        }
        return refused ?? new RecycleRefused($"no worker process '{m.Id}': no model is loaded", NotFound: true);
    }

    private Model? Find(string name) => _models.FirstOrDefault(m => string.Equals(m.Entry.Name, name, StringComparison.OrdinalIgnoreCase));

    private ModelPoolAnswer NotFound(string name) =>
        new(404, $"model '{name}' is not in this node's pool (models: {string.Join(", ", _models.Select(m => m.Entry.Name))})", null);

    private void OnActivity(ModelActivity a)
    {
        if (Find(a.Model) is not { } m) return;
        var now = DateTimeOffset.UtcNow;
        int previous = m.Live;
        if (a.Live > 0) m.LiveByRouter[Sender] = a.Live;
        else m.LiveByRouter.Remove(Sender);
        m.LastUsed = now;
        if (a.KeepAlive is { } k) m.KeepAliveOverride = k;
        bool more = a.Live > previous;
        // A failed model is tried again by a new query, not by the ends of those its failure refused.
        if (m.Live > 0 && (m.State == "available" || (m.State == "failed" && more)))
        {
            if (TryLoad(m, "a query asks for it") is { } why) Refuse(m, why, _options.NoRoomRetryAfter);
        }
        else if (m.Live > 0 && m.State == "unloading") m.Wanted = true;
        if (m.Live == 0) OnTick();
    }

    private void OnProcesses(WorkerProcessesChanged c)
    {
        if (c.Model is null || Find(c.Model) is not { } m) return;
        var now = DateTimeOffset.UtcNow;
        m.ResidentBytes = c.ResidentBytes;
        if (c.Busy) { m.LastUsed = now; m.BusyUntil = null; m.ServedSinceLoad = true; }
        else if (m.WorkersBusy) m.BusyUntil = now + _options.IdleGrace;
        m.WorkersBusy = c.Busy;
        if (c.Stopped)
        {
            if (m.Supervisor is { } s) Context.Stop(s);
            m.Supervisor = null;
            m.ResidentBytes = null;
            m.LoadedAt = null;
            if (m.State == "unloading") m.State = "available";
            m.Unloads++;
            _log.Info("model {0} unloaded: its {1} of the budget is free", m.Entry.Name, MemorySize.Format(m.Entry.ReservationBytes));
            if (m.Wanted || m.Live > 0) TryLoadOrRefuse(m, "a query asked for it while it unloaded");
            OnTick();
            return;
        }
        if (m.State == "unloading") return;
        if (c.Failed)
        {
            m.State = "failed";
            m.Error = c.Error ?? "its worker process could not start";
            if (m.Supervisor is { } s) Context.Stop(s);
            m.Supervisor = null;
            m.ResidentBytes = null;
            m.Wanted = false;
            _log.Error("model {0} failed to load: {1}", m.Entry.Name, m.Error);
            Refuse(m, $"model '{m.Entry.Name}' failed to load: {m.Error}", null);
            OnTick();
            return;
        }
        if (c.Ready && m.State == "loading")
        {
            m.State = "ready";
            m.Error = null;
            m.LoadedAt = now;
            m.LastUsed ??= now;
            m.LoadSeconds = m.LoadStartedAt is { } t ? (now - t).TotalSeconds : 0;
            _log.Info("model {0} ready in {1:0.0}s", m.Entry.Name, m.LoadSeconds);
        }
    }

    /// <summary>Drained models that went idle, keep-alive expiry, then the loads that wait for room.</summary>
    private void OnTick()
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var m in _models.Where(m => m.State == "ready" && m.Draining && !m.WorkersBusy && !(m.BusyUntil is { } t && now < t)).ToList())
        {
            m.Evictions++;
            m.Wanted = false; // its own waiting queries (Live) bring it back in its turn
            Unload(m, "drained to make room for a waiting model, its queries done");
        }
        foreach (var m in _models.Where(m => m.State == "ready" && !m.Pinned && m.KeepAlive is not null && !IsBusy(m, now)).ToList())
            if (now - (m.LastUsed ?? now) >= m.KeepAlive!.Value)
            {
                m.Wanted = false;
                Unload(m, m.KeepAlive == TimeSpan.Zero ? "its request asked for keep_alive 0" : $"idle past its keep-alive of {Describe(m.KeepAlive.Value)}");
            }
        foreach (var m in _models)
            if (IsWaiting(m)) m.WaitingSince ??= now;
            else m.WaitingSince = null;
        foreach (var m in _models.Where(IsWaiting).OrderBy(m => m.WaitingSince).ToList())
            TryLoadOrRefuse(m, "waiting for room");
    }

    private void TryLoadOrRefuse(Model m, string why)
    {
        if (TryLoad(m, why) is { } refused) Refuse(m, refused, _options.NoRoomRetryAfter);
    }

    /// <summary>The model's waiting queries are refused with the reason, by every router that has some.</summary>
    private void Refuse(Model m, string reason, TimeSpan? retryAfter)
    {
        var message = new ModelUnavailable(m.Entry.Name, reason, retryAfter);
        _router.Tell(message);
        foreach (var router in m.LiveByRouter.Keys.Where(r => !r.Equals(_router))) router.Tell(message);
    }

    /// <summary>Not loaded, asked for, and able to fit the budget at all.</summary>
    private bool IsWaiting(Model m) => m.State == "available" && (m.Wanted || m.Live > 0) && m.Entry.ReservationBytes <= _options.BudgetBytes;

    private bool IsBusy(Model m, DateTimeOffset now) => m.Live > 0 || m.WorkersBusy || (m.BusyUntil is { } t && now < t);

    private long Reserved => _models.Where(m => m.Holds).Sum(m => m.Entry.ReservationBytes);

    /// <summary>
    /// Starts the model's load when it fits, after unloading the least recently used idle models that make it fit. Returns
    /// null when it loads or will once room is made (it waits for busy models to end, or for unloads to finish); the reason
    /// when no room can be made at all.
    /// </summary>
    private string? TryLoad(Model m, string why)
    {
        if (m.Holds) { if (m.State == "unloading") m.Wanted = true; return null; }
        long need = m.Entry.ReservationBytes;
        if (need > _options.BudgetBytes)
            return $"model '{m.Entry.Name}' needs {MemorySize.Format(need)} ({m.Entry.ReservationTerms}), more than this node's whole budget of "
                   + $"{MemorySize.Format(_options.BudgetBytes)} ({_options.BudgetTerms})";
        m.Wanted = true;
        m.WaitingSince ??= DateTimeOffset.UtcNow;
        long free = _options.BudgetBytes - Reserved;
        // A model that waits longer goes first: this one waits behind it rather than taking the room made for it.
        if (_models.Any(x => x != m && IsWaiting(x) && x.WaitingSince < m.WaitingSince)) return null;
        if (need <= free)
        {
            Load(m, why);
            return null;
        }
        var now = DateTimeOffset.UtcNow;
        var idle = _models.Where(x => x.State == "ready" && !x.Pinned && !IsBusy(x, now)).OrderBy(x => x.LastUsed ?? DateTimeOffset.MinValue).ToList();
        long unloading = _models.Where(x => x.State == "unloading").Sum(x => x.Entry.ReservationBytes);
        var evict = new List<Model>();
        long freed = unloading;
        foreach (var x in idle)
        {
            if (free + freed >= need) break;
            evict.Add(x);
            freed += x.Entry.ReservationBytes;
        }
        if (free + freed >= need)
        {
            foreach (var x in evict)
            {
                x.Evictions++;
                x.Wanted = false;
                Unload(x, $"evicted, least recently used, to make room for '{m.Entry.Name}' ({MemorySize.Format(need)})");
            }
            return null; // loads when the unloads have finished (OnProcesses → OnTick)
        }
        // Busy or loading models may become idle later: wait for them. Only pinned ones can never make room.
        long couldFree = _models.Where(x => x != m && x.Holds && !x.Pinned).Sum(x => x.Entry.ReservationBytes);
        if (free + couldFree >= need)
        {
            // Busy models that have served since their load are drained, the longest loaded first: they finish their queries
            // and take no new ones (those wait for their model's next turn), so that a stream of queries for the loaded
            // models cannot starve this one past its deadline.
            long draining = _models.Where(x => x.Draining && x.State == "ready").Sum(x => x.Entry.ReservationBytes);
            foreach (var x in _models.Where(x => x.State == "ready" && !x.Pinned && !x.Draining && x.ServedSinceLoad)
                         .OrderBy(x => x.LoadedAt ?? DateTimeOffset.MinValue))
            {
                if (free + freed + draining >= need) break;
                x.Draining = true;
                draining += x.Entry.ReservationBytes;
                _log.Info("model {0}: draining it to make room for '{1}' ({2}): it finishes its queries and takes no new ones",
                    x.Entry.Name, m.Entry.Name, MemorySize.Format(need));
                x.Supervisor?.Tell(DrainWorkerProcesses.Instance);
            }
            return null;
        }
        var pinned = _models.Where(x => x.Holds && x.Pinned).Select(x => $"{x.Entry.Name} {MemorySize.Format(x.Entry.ReservationBytes)}").ToList();
        return $"no room for model '{m.Entry.Name}' ({MemorySize.Format(need)}): the budget is {MemorySize.Format(_options.BudgetBytes)} "
               + $"and pinned models hold {string.Join(", ", pinned)}";
    }

    private void Load(Model m, string why)
    {
        m.State = "loading";
        m.WaitingSince = null;
        m.Error = null;
        m.Draining = false;
        m.ServedSinceLoad = false;
        m.LoadStartedAt = DateTimeOffset.UtcNow;
        m.Loads++;
        int firstId = m.Index * _options.ProcessesPerModel + 1;
        m.Supervisor = Context.ActorOf(_supervisor(m.Entry, firstId, Self), $"model-{m.Index + 1}-{Uri.EscapeDataString(m.Entry.Name)}-{m.Loads}");
        _log.Info("model {0}: loading ({1}); it reserves {2} of the budget, {3} now held of {4}", m.Entry.Name, why,
            MemorySize.Format(m.Entry.ReservationBytes), MemorySize.Format(Reserved), MemorySize.Format(_options.BudgetBytes));
    }

    private void Unload(Model m, string why)
    {
        if (m.Supervisor is null) { m.State = "available"; return; }
        m.State = "unloading";
        m.KeepAliveOverride = null;
        _log.Info("model {0}: unloading ({1})", m.Entry.Name, why);
        m.Supervisor.Tell(StopWorkerProcesses.Instance);
    }

    private static string Describe(TimeSpan t) => t.TotalSeconds < 120 ? $"{t.TotalSeconds:0.#}s" : $"{t.TotalMinutes:0.#}min";

    private ModelPoolView View() => new(_models.Select(Info).ToList(), _options.BudgetBytes, _options.BudgetTerms, Reserved);

    private static ModelPoolInfo Info(Model m) => new(
        m.Entry.Name, m.Entry.Folder, m.State, m.Error, m.Pinned, m.KeepAlive is { } k && k != Timeout.InfiniteTimeSpan ? k.TotalSeconds : null,
        m.Entry.ReservationBytes, m.Entry.ReservationTerms, m.ResidentBytes, m.Live, m.LoadedAt, m.LastUsed,
        m.Loads, m.Unloads, m.Evictions, m.LoadSeconds);
}
