using System.Text;
using Akka.Actor;
using Akka.Event;
using ActorQuery.Actors.Cluster;
using ActorQuery.Contracts;

namespace ActorQuery.Actors.Routing;

/// <summary>
/// One per node: admits queries (bounded in flight and queued, memory-aware by KV need, deadlines), answers
/// deterministic repeats from the <see cref="QueryCache"/>, routes the rest to the least-loaded ready worker,
/// and passes every event on to the query's reply-to. It keeps every running query's generated tokens and the text
/// its client has: when a worker gives a query back (out of memory, crash, worker or node lost), a query with no token
/// yet is retried and one with tokens is resumed on another worker from exactly there (the client sees a pause, not
/// an error), up to <see cref="RouterOptions.MaxResumes"/> times. It is the single place that decides a query's end, which is how each query gets exactly one
/// terminal event: a worker's late events for a ticket that already ended are dropped here.
/// </summary>
public sealed class QueryRouter : ReceiveActor, IWithTimers
{
    private sealed record DeadlineReached(string QueryId) : Akka.Actor.INoSerializationVerificationNeeded;

    private sealed class Live(QueryRequest request, IActorRef client, TimeSpan timeout, string? cacheKey)
    {
        public QueryRequest Request { get; } = request;
        public IActorRef Client { get; } = client;
        public TimeSpan Timeout { get; } = timeout;
        public string? CacheKey { get; } = cacheKey;
        public int KvNeed => ActorQuery.Contracts.KvNeed.Tokens(Request.PromptTokenIds.Count, Request.Sampling.MaxNewTokens);
        /// <summary>When it was admitted (the scheduler's clock), for how long it may be overtaken.</summary>
        public DateTimeOffset AdmittedAt { get; set; }
        /// <summary>Dispatches after a worker gave the query back before any token.</summary>
        public int Retries { get; set; }
        /// <summary>Dispatches that continued from tokens an earlier worker generated.</summary>
        public int Resumes { get; set; }
        public long? Ticket { get; set; }
        public IActorRef? Worker { get; set; }
        public IActorRef? PreviousWorker { get; set; }
        /// <summary>The completion so far: the text given to the client (sent or held) and the token ids, to resume
        /// the query from them, and to cache a deterministic answer when it completes.</summary>
        public StringBuilder Text { get; } = new();
        public List<int> Ids { get; } = new();
        public List<TokenLogprob>? Logprobs { get; set; }
        /// <summary>Tokens of a <see cref="QueryRequest.Buffered"/> query, given to the client when it ends.</summary>
        public List<TokensGenerated>? Held { get; set; }
    }

    private sealed class WorkerEntry
    {
        public WorkerStatus? Status { get; set; }
        /// <summary>Registered directly (a local worker): its own status messages are authoritative, published copies only confirm it.</summary>
        public bool Direct { get; init; }
        /// <summary>Queries sent to this worker and not ended: a count, not a queue (the worker holds the queries).</summary>
        public int Assigned { get; set; }
        /// <summary>KV need of the queries sent since the worker's last status, which does not count them yet.</summary>
        public int ReservedSinceReport { get; set; }
        public bool IsReady => Status?.State == WorkerState.Ready;
        /// <summary>Ready and its node's watchdog has not paused admission (a worker elsewhere in the cluster carries that in its status).</summary>
        public bool TakesWork => IsReady && Status?.MemoryPressure is null;
        /// <summary>The query's KV need in whole blocks of this worker's pool, in tokens.</summary>
        public int BlockNeed(int tokens) => Status is { KvBlockSize: > 1 } s ? (tokens + s.KvBlockSize - 1) / s.KvBlockSize * s.KvBlockSize : tokens;
        public bool MayBecomeReady => Status is null || Status.State is WorkerState.Ready or WorkerState.Loading or WorkerState.Restarting;
        public int Load => Math.Max(Assigned, (Status?.Running ?? 0) + (Status?.Queued ?? 0));
        public int KvFree => Status is { KvCapacityTokens: > 0 } s ? s.KvFreeTokens - ReservedSinceReport : int.MaxValue;
    }

    private readonly string _node;
    private readonly RouterOptions _options;
    private readonly QueryCache _cache;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, Live> _live = new();
    private readonly Dictionary<long, Live> _byTicket = new();
    private readonly LinkedList<Live> _queue = new();
    private readonly Dictionary<IActorRef, WorkerEntry> _workers = new();
    /// <summary>Worker processes (re)starting on this node, by source, with their address once known: their workers will
    /// register, so waiting queries are held for them rather than refused.</summary>
    private readonly Dictionary<string, (Address? Node, string? Model)> _expected = new(StringComparer.Ordinal);
    /// <summary>The node's model pool and the models it may load: a query for one of them waits for its load.</summary>
    private IActorRef? _pool;
    private readonly HashSet<string> _catalog = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>Live queries per model, which the pool reads as busy (never evicted) and as a request to load.</summary>
    private readonly Dictionary<string, int> _liveByModel = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>Per <see cref="QueryRequest.AffinityKey"/>: the worker its first dispatched query went to, and how many
    /// of its queries are live; forgotten when the last ends.</summary>
    private readonly Dictionary<string, (IActorRef? Worker, int Live)> _affinity = new(StringComparer.Ordinal);
    /// <summary>The pools of other nodes and the models each may load: a query for a model only they have goes there.</summary>
    private readonly Dictionary<IActorRef, HashSet<string>> _remotePools = new();
    /// <summary>Dispatch tickets start at a random point, so that a restarted router never reuses one that a worker may
    /// still answer (a late event of an earlier incarnation's query).</summary>
    private long _nextTicket = Random.Shared.NextInt64(1, long.MaxValue / 2);
    private bool _paused, _draining;
    private string? _pauseReason;
    private readonly List<IActorRef> _drainWaiters = new();
    private MemoryStatus? _memory;
    private long _admitted, _completed, _cancelled, _refused, _timedOut, _failed, _retried, _resumed, _cacheHits;

    public ITimerScheduler Timers { get; set; } = null!;

    public QueryRouter(string node, RouterOptions options, CacheOptions cache)
    {
        _node = node;
        _options = options;
        _cache = new QueryCache(cache);

        Receive<SubmitQuery>(Submit);
        Receive<CancelQuery>(m =>
        {
            if (!_live.TryGetValue(m.QueryId, out var q)) return;
            CancelWork(q);
            _cancelled++;
            Finish(q, new QueryCancelled(q.Request.QueryId));
        });
        Receive<DeadlineReached>(OnDeadline);
        Receive<QueryProgress>(OnProgress);
        Receive<QueryReturned>(OnReturned);
        Receive<RegisterWorker>(m =>
        {
            if (_workers.ContainsKey(m.Worker)) return;
            _workers[m.Worker] = new WorkerEntry { Direct = true };
            Context.Watch(m.Worker);
            m.Worker.Tell(new SubscribeWorkerStatus(Self));
        });
        Receive<WorkerStatus>(OnWorkerStatus);
        Receive<WorkerLoadPublished>(OnWorkerPublished);
        Receive<WorkerNodeLost>(OnNodeLost);
        Receive<ActorQuery.Actors.Workers.WorkersExpected>(m =>
        {
            if (m.Expected) _expected[m.Source] = (m.Node, m.Model);
            else if (_expected.Remove(m.Source)) RefuseWaiting();
        });
        Receive<Terminated>(t => OnWorkerGone(t.ActorRef));
        Receive<ActorQuery.Actors.Workers.ModelCatalog>(m =>
        {
            _pool = m.Pool;
            _catalog.Clear();
            _catalog.UnionWith(m.Models);
        });
        Receive<ActorQuery.Actors.Workers.ModelCatalogPublished>(m =>
        {
            if (m.Pool.Equals(_pool)) return;
            if (!_remotePools.ContainsKey(m.Pool)) _log.Info("model pool at {0} may load {1}", m.Pool.Path.Address, string.Join(", ", m.Models));
            _remotePools[m.Pool] = new HashSet<string>(m.Models, StringComparer.OrdinalIgnoreCase);
        });
        Receive<ActorQuery.Actors.Workers.ModelUnavailable>(m =>
        {
            foreach (var q in _queue.Where(q => q.Ticket is null && string.Equals(q.Request.Model, m.Model, StringComparison.OrdinalIgnoreCase)).ToList())
            {
                _refused++;
                Finish(q, new QueryRefused(q.Request.QueryId, RefusalReason.NoModelReady, m.Reason, m.RetryAfter));
            }
        });
        Receive<PauseAdmission>(m =>
        {
            if (!_paused) _log.Warning("admission paused: {0}", m.Reason);
            _paused = true;
            _pauseReason = m.Reason;
        });
        Receive<ResumeAdmission>(_ =>
        {
            if (_paused) _log.Info("admission resumed");
            _paused = false;
            _pauseReason = null;
            Dispatch();
        });
        Receive<MemoryStatus>(m => _memory = m);
        Receive<CleanupMemory>(_ => _cache.Clear());
        Receive<CleanupNode>(m =>
        {
            int dropped = _cache.Stats.Entries;
            _cache.Clear();
            Gather<WorkerCleanedUp>(CleanupWorker.Instance, m.Timeout, a => $"{a.Node}/{a.Worker}",
                (answers, silent) => new NodeCleanedUp(_node, dropped, answers, silent));
        });
        Receive<AskNodeFaults>(m => Gather<FaultsReported>(m.Message, m.Timeout, a => $"{a.Node}/{a.Worker}",
            (answers, silent) => new NodeFaults(_node, answers, silent)));
        Receive<GetStatus>(_ => Sender.Tell(Status()));
        Receive<StartDraining>(_ =>
        {
            // This node's workers (its own and its worker processes') say so to every gateway, which then routes around them.
            if (!_draining)
                foreach (var (worker, entry) in _workers)
                    if (entry.Direct || entry.Status?.Node == _node) worker.Tell(DrainWorker.Instance);
            _draining = true;
            _drainWaiters.Add(Sender);
            _log.Info("draining: refusing new queries, {0} still live", _live.Count);
            CheckDrained();
        });
        Receive<AbortAll>(m =>
        {
            // The node is going away, not the model failing: a retryable refusal, even after tokens.
            foreach (var q in _live.Values.ToList())
            {
                CancelWork(q);
                _refused++;
                Finish(q, new QueryRefused(q.Request.QueryId, RefusalReason.ShuttingDown, m.Reason, _options.NoModelRetryAfter));
            }
        });
    }

    public static Props Props(string node, RouterOptions options, CacheOptions cache) =>
        Akka.Actor.Props.Create(() => new QueryRouter(node, options, cache));

    protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(MemoryStatus));

    protected override void PostStop()
    {
        Context.System.EventStream.Unsubscribe(Self);
        // Exactly one terminal event even when the router itself goes away.
        foreach (var q in _live.Values)
        {
            if (q.Ticket is { } t) q.Worker?.Tell(new CancelRun(t));
            q.Client.Tell(new QueryFailed(q.Request.QueryId, "the node's query router stopped"));
        }
        _live.Clear();
    }

    private int InFlight => _byTicket.Count;

    /// <summary>This node's workers (its own and its worker processes'), named "node/worker" as their answers name them.</summary>
    private Dictionary<IActorRef, string> NodeWorkers() => _workers
        .Where(w => w.Value.Direct || w.Value.Status?.Node == _node)
        .ToDictionary(w => w.Key, w => $"{w.Value.Status?.Node ?? _node}/{w.Value.Status?.Worker ?? w.Key.Path.Name}");

    /// <summary>Asks every worker of this node through a <see cref="WorkerGather{TAnswer}"/>, which answers the sender.</summary>
    private void Gather<TAnswer>(object message, TimeSpan timeout, Func<TAnswer, string> nameOf,
        Func<IReadOnlyList<TAnswer>, IReadOnlyList<string>, object> reply) where TAnswer : class =>
        Context.ActorOf(WorkerGather<TAnswer>.Props(NodeWorkers(), message, timeout, Sender, nameOf, reply));

    /// <summary>Why no ready worker takes work: every one's node (a worker process, or a node elsewhere) paused admission
    /// for memory; null when one takes work or none is ready.</summary>
    private string? WorkersPressure
    {
        get
        {
            string? reason = null;
            foreach (var w in _workers.Values)
            {
                if (!w.IsReady) continue;
                if (w.Status!.MemoryPressure is not { } p) return null;
                reason ??= $"{w.Status.Node}/{w.Status.Worker}: {p}";
            }
            return reason;
        }
    }

    /// <summary>A query for <paramref name="model"/> (null: any) may still be served here: a worker of it is ready, loading or
    /// restarting, a worker process of it is on its way, or the node's pool can load it (the pool refuses it if not).</summary>
    private bool MayServe(string? model) =>
        (model is not null && PoolOf(model) is not null)
        || _expected.Values.Any(e => model is null || e.Model is null || string.Equals(e.Model, model, StringComparison.OrdinalIgnoreCase))
        || _workers.Values.Any(w => w.MayBecomeReady && MaySend(w, model));

    private void Submit(SubmitQuery m)
    {
        var r = m.Request;
        var client = m.ReplyTo;
        if (_draining) { Refuse(r, client, RefusalReason.ShuttingDown, "the node is shutting down", _options.NoModelRetryAfter); return; }
        if (Invalid(r) is { } why) { Refuse(r, client, RefusalReason.InvalidRequest, why, null); return; }

        var key = QueryCache.KeyOf(r);
        if (key is not null && _cache.TryGet(key, out var hit))
        {
            _cacheHits++;
            client.Tell(new TokensGenerated(r.QueryId, hit.Text, hit.TokenIds, hit.Logprobs));
            client.Tell(new QueryCompleted(r.QueryId, hit.FinishReason, hit.PromptTokens, hit.CompletionTokens, Cached: true, hit.Worker,
                CachedPromptTokens: hit.PromptTokens));
            return;
        }
        if (_paused)
        {
            Refuse(r, client, RefusalReason.MemoryPressure, $"memory pressure: {_pauseReason}", _options.MemoryPressureRetryAfter);
            return;
        }
        if (WorkersPressure is { } pressure)
        {
            Refuse(r, client, RefusalReason.MemoryPressure, $"memory pressure on every ready worker: {pressure}", _options.MemoryPressureRetryAfter);
            return;
        }
        if (r.Model is { } model && PoolOf(model) is null && _workers.Values.All(w => w.Status?.Model is not null) && _workers.Count > 0
            && !_workers.Values.Any(w => Serves(w, model)))
        {
            var served = string.Join(", ", _workers.Values.Select(w => w.Status!.Model).Distinct());
            Refuse(r, client, RefusalReason.InvalidRequest, $"model: '{model}' is not served here (served: {served})", null);
            return;
        }
        int need = KvNeed.Tokens(r.PromptTokenIds.Count, r.Sampling.MaxNewTokens);
        var sized = _workers.Values.Where(w => w.MayBecomeReady && w.Status is { KvCapacityTokens: > 0 }
                                               && (r.Model is null || Serves(w, r.Model))).ToList();
        if (sized.Count > 0 && sized.All(w => w.BlockNeed(need) > w.Status!.KvCapacityTokens))
        {
            var largest = sized.MaxBy(w => w.Status!.KvCapacityTokens)!.Status!;
            Refuse(r, client, RefusalReason.TooLarge,
                $"needs {need} KV-cache tokens (prompt {r.PromptTokenIds.Count} + max_new_tokens {r.Sampling.MaxNewTokens}); the largest worker's "
                + $"KV pool holds {largest.KvCapacityTokens} ({largest.KvCapacityTokens / Math.Max(1, largest.KvBlockSize)} blocks of {Math.Max(1, largest.KvBlockSize)})", null);
            return;
        }
        if (!MayServe(r.Model))
        {
            Refuse(r, client, RefusalReason.NoModelReady, NoModelMessage(), _options.NoModelRetryAfter);
            return;
        }

        var timeout = r.Timeout ?? _options.DefaultTimeout;
        var q = new Live(r, client, timeout, key) { AdmittedAt = Context.System.Scheduler.Now };
        if (_queue.Count == 0 && InFlight < _options.MaxInFlight && PickWorker(q) is { } worker)
        {
            Admit(q);
            Send(q, worker);
        }
        else if (_queue.Count < _options.MaxQueue)
        {
            Admit(q);
            _queue.AddLast(q);
        }
        else
        {
            Refuse(r, client, RefusalReason.QueueFull,
                $"{InFlight} queries in flight and {_queue.Count} waiting (limits {_options.MaxInFlight} and {_options.MaxQueue})",
                _options.QueueFullRetryAfter);
        }
    }

    private string? Invalid(QueryRequest r)
    {
        if (string.IsNullOrWhiteSpace(r.QueryId)) return "query_id: must not be empty";
        if (_live.ContainsKey(r.QueryId)) return $"query_id: '{r.QueryId}' is already running";
        if (r.PromptTokenIds is null || r.PromptTokenIds.Count == 0) return "prompt: must not be empty";
        if (r.Timeout is { } t && t <= TimeSpan.Zero) return "timeout: must be > 0";
        try { r.Sampling.Validate(); }
        catch (ArgumentException e)
        {
            var message = e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "");
            return $"{e.ParamName}: {message}";
        }
        return null;
    }

    private void Admit(Live q)
    {
        _admitted++;
        _live[q.Request.QueryId] = q;
        CountLive(q.Request, +1);
        if (q.Request.AffinityKey is { } key)
            _affinity[key] = _affinity.TryGetValue(key, out var a) ? (a.Worker, a.Live + 1) : (null, 1);
        Timers.StartSingleTimer(DeadlineKey(q), new DeadlineReached(q.Request.QueryId), q.Timeout);
    }

    private void Refuse(QueryRequest r, IActorRef client, RefusalReason reason, string message, TimeSpan? retryAfter)
    {
        _refused++;
        client.Tell(new QueryRefused(r.QueryId, reason, message, retryAfter));
    }

    /// <summary>Least-loaded ready worker whose reported free KV holds the query; another than the one that just failed it, if possible.</summary>
    private IActorRef? PickWorker(Live q)
    {
        var candidates = _workers.Where(w => w.Value.TakesWork && w.Value.KvFree >= w.Value.BlockNeed(q.KvNeed)
                                             && (q.Request.Model is null || Serves(w.Value, q.Request.Model))).ToList();
        if (candidates.Count == 0) return null;
        var preferred = candidates.Where(w => !w.Key.Equals(q.PreviousWorker)).ToList();
        if (preferred.Count > 0) candidates = preferred;
        if (q.Request.AffinityKey is { } key && _affinity.TryGetValue(key, out var a) && a.Worker is { } sibling
            && candidates.Any(w => w.Key.Equals(sibling)))
            return sibling;
        return candidates
            .OrderBy(w => w.Value.Load)
            .ThenByDescending(w => w.Value.KvFree)
            .ThenBy(w => w.Key.Path.ToString(), StringComparer.Ordinal)
            .First().Key;
    }

    private static bool Serves(WorkerEntry w, string model) =>
        string.Equals(w.Status?.Model, model, StringComparison.OrdinalIgnoreCase);

    /// <summary>A query for <paramref name="model"/> (null: any) may go to <paramref name="w"/>: it serves that model, or it
    /// has not said yet which one it serves.</summary>
    private static bool MaySend(WorkerEntry w, string? model) => model is null || w.Status?.Model is null || Serves(w, model);

    private void Send(Live q, IActorRef worker)
    {
        var ticket = ++_nextTicket;
        q.Ticket = ticket;
        q.Worker = worker;
        _byTicket[ticket] = q;
        var entry = _workers[worker];
        entry.Assigned++;
        if (q.Request.AffinityKey is { } key && _affinity.TryGetValue(key, out var a) && a.Worker is null)
            _affinity[key] = (worker, a.Live);
        entry.ReservedSinceReport += q.KvNeed;   // a resumed query needs the same: prompt + generated + the rest
        var request = q.Ids.Count == 0 ? q.Request
            : q.Request with { GeneratedTokenIds = q.Ids.ToArray(), GeneratedText = q.Text.ToString() };
        worker.Tell(new RunQuery(ticket, request));
    }

    /// <summary>
    /// Sends queued queries to workers while the limits allow, in arrival order. A query that waits for KV room does not
    /// hold back smaller ones behind it (they would time out behind it); once it has waited half its deadline, nothing
    /// overtakes it any more, so that it is not starved by a stream of small ones.
    /// </summary>
    private void Dispatch()
    {
        var now = Context.System.Scheduler.Now;
        for (var node = _queue.First; node is not null && !_paused && InFlight < _options.MaxInFlight;)
        {
            var next = node.Next;
            var q = node.Value;
            if (PickWorker(q) is { } worker)
            {
                _queue.Remove(node);
                Send(q, worker);
            }
            else if (now - q.AdmittedAt >= q.Timeout / 2) break;
            node = next;
        }
        CheckDrained();
    }

    private void OnProgress(QueryProgress m)
    {
        if (!_byTicket.TryGetValue(m.Ticket, out var q)) return; // a late event of an attempt that already ended
        var e = m.Event;
        if (e is TokensGenerated t)
        {
            q.Text.Append(t.Text);
            q.Ids.AddRange(t.TokenIds);
            if (q.CacheKey is not null && t.Logprobs is { } lp) (q.Logprobs ??= new()).AddRange(lp);
            if (q.Request.Buffered) (q.Held ??= new()).Add(t);
            else q.Client.Tell(t);
            return;
        }
        if (!e.IsTerminal) { q.Client.Tell(e); return; }
        switch (e)
        {
            case QueryCompleted c:
                _completed++;
                if (q.CacheKey is not null)
                    _cache.Put(q.CacheKey, new CachedAnswer(q.Text.ToString(), q.Ids.ToArray(), q.Logprobs?.ToArray(),
                        c.FinishReason, c.PromptTokens, c.CompletionTokens, c.Worker));
                break;
            case QueryRefused: _refused++; break;
            case QueryCancelled: _cancelled++; break;
            case QueryTimedOut: _timedOut++; break;
            default: _failed++; break;
        }
        Finish(q, e);
    }

    /// <summary>
    /// A worker gave the query back (its model ran out of memory or crashed, the worker or its node was lost). With no
    /// token generated yet it is retried, up to <see cref="RouterOptions.MaxAttempts"/> dispatches; with tokens it is
    /// resumed from them on another worker (the client sees a pause), up to <see cref="RouterOptions.MaxResumes"/>
    /// times, so that a query that brings workers down every time cannot go on doing it.
    /// </summary>
    private void OnReturned(QueryReturned m)
    {
        if (!_byTicket.TryGetValue(m.Ticket, out var q)) return;
        Unassign(q);
        var id = q.Request.QueryId;
        if (q.Ids.Count == 0)
        {
            if (q.Retries + 1 >= _options.MaxAttempts)
            {
                _failed++;
                Finish(q, new QueryFailed(id, $"{m.Reason}; already retried {q.Retries} time(s)"));
                return;
            }
            q.Retries++;
            _retried++;
            _log.Info("query {0}: retrying after its worker gave it back ({1})", id, m.Reason);
        }
        else if (q.Ids.Count >= q.Request.Sampling.MaxNewTokens)
        {
            // Every token arrived, only the worker's completion did not: nothing is left to generate.
            _completed++;
            Finish(q, new QueryCompleted(id, FinishReason.Length, q.Request.PromptTokenIds.Count, q.Ids.Count, Cached: false,
                PreviousWorkerName(q)));
            return;
        }
        else if (q.Resumes >= _options.MaxResumes)
        {
            _failed++;
            Finish(q, new QueryFailed(id, $"resumed {q.Resumes} time{(q.Resumes == 1 ? "" : "s")}; its worker failed again: {m.Reason}"));
            return;
        }
        else
        {
            q.Resumes++;
            _resumed++;
            _log.Warning("query {0}: resuming after {1} token(s) on another worker ({2}); resume {3} of at most {4}",
                id, q.Ids.Count, m.Reason, q.Resumes, _options.MaxResumes);
        }
        _queue.AddFirst(q);
        RefuseWaiting();
        Dispatch();
    }

    private string PreviousWorkerName(Live q) =>
        q.PreviousWorker is { } w && _workers.TryGetValue(w, out var e) && e.Status is { } s ? $"{s.Node}/{s.Worker}" : q.PreviousWorker?.Path.Name ?? "";

    private void OnDeadline(DeadlineReached m)
    {
        if (!_live.TryGetValue(m.QueryId, out var q)) return;
        CancelWork(q);
        if (q.Ticket is null && !_workers.Values.Any(w => w.IsReady && MaySend(w, q.Request.Model)))
        {
            _refused++;
            Finish(q, new QueryRefused(q.Request.QueryId, RefusalReason.NoModelReady,
                $"no model became ready within the deadline of {q.Timeout.TotalSeconds:0.###}s", _options.NoModelRetryAfter));
            return;
        }
        _timedOut++;
        Finish(q, new QueryTimedOut(q.Request.QueryId, q.Timeout));
    }

    private void OnWorkerStatus(WorkerStatus s)
    {
        if (_workers.TryGetValue(Sender, out var entry)) Update(Sender, entry, s);
    }

    /// <summary>A worker anywhere in the cluster, as its node publishes it (<see cref="WorkerDirectory"/> passes on only reachable members).</summary>
    private void OnWorkerPublished(WorkerLoadPublished m)
    {
        foreach (var (source, _) in _expected.Where(e => e.Value.Node is not null && e.Value.Node.Equals(m.Worker.Path.Address)).ToList())
            _expected.Remove(source);
        if (_workers.TryGetValue(m.Worker, out var entry))
        {
            if (entry.Direct) return;
        }
        else
        {
            entry = new WorkerEntry();
            _workers[m.Worker] = entry;
            Context.Watch(m.Worker);
            _log.Info("worker {0} at {1} joined the routing ({2})", m.Status.Worker, m.Worker.Path.Address, m.Status.State);
        }
        Update(m.Worker, entry, m.Status);
    }

    /// <summary>A worker's new status: its reservations are in it now; waiting queries may move, or never can. A worker
    /// that turned Failed (a hung step) cannot hand its queries back itself: they resume elsewhere now.</summary>
    private void Update(IActorRef worker, WorkerEntry entry, WorkerStatus status)
    {
        bool failedNow = status.State == WorkerState.Failed && entry.Status?.State != WorkerState.Failed;
        entry.Status = status;
        if (failedNow) ReturnQueriesOf(worker, $"worker {status.Worker} failed: {status.Error}");
        entry.ReservedSinceReport = 0;
        RefuseWaiting();
        Dispatch();
    }

    /// <summary>A node is unreachable or gone: its workers leave the routing and their queries end now, not at their deadline.</summary>
    private void OnNodeLost(WorkerNodeLost m)
    {
        foreach (var pool in _remotePools.Keys.Where(p => p.Path.Address.Equals(m.Node)).ToList()) _remotePools.Remove(pool);
        var lost = _workers.Keys.Where(w => w.Path.Address.Equals(m.Node)).ToList();
        if (lost.Count == 0) return;
        _log.Warning("{0}: {1} worker(s) leave the routing", m.Reason, lost.Count);
        foreach (var w in lost)
        {
            Context.Unwatch(w);
            OnWorkerGone(w, m.Reason);
        }
    }

    private void OnWorkerGone(IActorRef worker, string reason = "its worker stopped")
    {
        if (!_workers.Remove(worker)) return;
        ReturnQueriesOf(worker, reason);
        RefuseWaiting();
    }

    /// <summary>The queries dispatched to <paramref name="worker"/> come back as if it had handed them back: retried or resumed.</summary>
    private void ReturnQueriesOf(IActorRef worker, string reason)
    {
        foreach (var q in _byTicket.Values.Where(q => worker.Equals(q.Worker)).ToList())
            OnReturned(new QueryReturned(q.Ticket!.Value, reason, 0));
    }

    /// <summary>No worker can ever take these waiting queries (all failed): tell their clients now rather than at the deadline.</summary>
    private void RefuseWaiting()
    {
        if (_queue.Count == 0) return;
        foreach (var q in _queue.Where(q => !MayServe(q.Request.Model)).ToList())
        {
            _refused++;
            Finish(q, new QueryRefused(q.Request.QueryId, RefusalReason.NoModelReady, NoModelMessage(), _options.NoModelRetryAfter));
        }
    }

    private string NoModelMessage()
    {
        var failed = _workers.Values.Select(w => w.Status).Where(s => s?.Error is not null).Select(s => $"{s!.Worker}: {s.Error}").ToList();
        return failed.Count == 0 ? "no model is loaded on this node" : "no model is ready: " + string.Join("; ", failed);
    }

    private void CancelWork(Live q)
    {
        if (q.Ticket is { } t) q.Worker?.Tell(new CancelRun(t));
    }

    private void Unassign(Live q)
    {
        if (q.Ticket is { } t) _byTicket.Remove(t);
        if (q.Worker is { } w && _workers.TryGetValue(w, out var entry)) entry.Assigned = Math.Max(0, entry.Assigned - 1);
        q.PreviousWorker = q.Worker;
        q.Ticket = null;
        q.Worker = null;
    }

    /// <summary>The one place a query ends.</summary>
    private void Finish(Live q, QueryEvent terminal)
    {
        if (!_live.Remove(q.Request.QueryId)) return;
        CountLive(q.Request, -1);
        if (q.Request.AffinityKey is { } key && _affinity.TryGetValue(key, out var a))
        {
            if (a.Live <= 1) _affinity.Remove(key);
            else _affinity[key] = (a.Worker, a.Live - 1);
        }
        Unassign(q);
        _queue.Remove(q);
        Timers.Cancel(DeadlineKey(q));
        if (q.Held is { } held)
            foreach (var t in held) q.Client.Tell(t);
        q.Held = null;
        q.Client.Tell(terminal);
        Dispatch();
    }

    /// <summary>The pool that loads <paramref name="model"/>: this node's when it may, else one elsewhere that may.</summary>
    private IActorRef? PoolOf(string model)
    {
        if (_pool is not null && _catalog.Contains(model)) return _pool;
        return _remotePools.Where(p => p.Value.Contains(model)).OrderBy(p => p.Key.Path.ToString(), StringComparer.Ordinal)
            .Select(p => p.Key).FirstOrDefault();
    }

    /// <summary>Tells the model's pool how many queries of it are live here (it loads the model, or keeps it).</summary>
    private void CountLive(QueryRequest r, int delta)
    {
        if (r.Model is not { } model || PoolOf(model) is not { } pool) return;
        _liveByModel.TryGetValue(model, out int n);
        n = Math.Max(0, n + delta);
        if (n == 0) _liveByModel.Remove(model);
        else _liveByModel[model] = n;
        pool.Tell(new ActorQuery.Actors.Workers.ModelActivity(model, n, delta > 0 ? r.KeepAlive : null));
    }

    private void CheckDrained()
    {
        if (!_draining || _live.Count > 0 || _drainWaiters.Count == 0) return;
        foreach (var w in _drainWaiters) w.Tell(Drained.Instance);
        _drainWaiters.Clear();
    }

    private static string DeadlineKey(Live q) => "deadline:" + q.Request.QueryId;

    private RouterStatus Status()
    {
        var pressure = WorkersPressure;
        return new(
            _node, _paused || pressure is not null, _draining, InFlight, _queue.Count, _options.MaxInFlight, _options.MaxQueue,
            _workers.Values.Select(w => w.Status).OfType<WorkerStatus>().OrderBy(s => s.Worker, StringComparer.Ordinal).ToList(),
            _cache.Stats, _memory,
            new RouterCounters(_admitted, _completed, _cancelled, _refused, _timedOut, _failed, _retried, _cacheHits, _resumed),
            _pauseReason ?? pressure);
    }
}
