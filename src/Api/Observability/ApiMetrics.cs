using ActorQuery.Actors;
using Prometheus;

namespace ActorQuery.Api.Observability;

/// <summary>
/// The Prometheus metrics of one server (a registry of its own, so that two servers in one process, as in tests,
/// do not mix counts). Request-side metrics are updated as requests run; router, memory and cache figures are
/// copied from the router's status just before each scrape.
/// </summary>
public sealed class ApiMetrics
{
    private static readonly double[] LatencyBuckets =
        [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    public Counter Requests { get; }
    public Counter Refused { get; }
    public Gauge QueueDepth { get; }
    public Gauge InFlight { get; }
    public Histogram TimeToFirstToken { get; }
    public Histogram InterTokenLatency { get; }
    public Histogram RequestDuration { get; }
    public Counter PromptTokens { get; }
    public Counter CachedPromptTokens { get; }
    public Counter GeneratedTokens { get; }
    public Counter ModelRestarts { get; }
    public Counter Oom { get; }
    public Gauge MemoryBytes { get; }
    public Gauge KvCacheTokens { get; }
    public Gauge WatchdogState { get; }
    public Gauge MemoryPaused { get; }
    public Counter MemoryCleanups { get; }
    public Counter MemoryPauses { get; }
    public Counter MemorySheds { get; }
    public Counter CacheHits { get; }
    public Counter Resumes { get; }
    public Counter CacheMisses { get; }
    public Gauge WorkersReady { get; }
    public Counter Alerts { get; }
    public Counter ModelRequests { get; }
    public Counter ModelTokens { get; }
    public Counter ModelLoads { get; }
    public Counter ModelUnloads { get; }
    public Counter ModelEvictions { get; }
    public Gauge ModelLoadSeconds { get; }
    public Gauge ModelLoaded { get; }
    public Gauge ModelResidentBytes { get; }
    /// <summary>Tokens/s, time to first token and inter-token latency per second over the last 10 minutes (the dashboard's charts).</summary>
    public Dashboard.LiveSeries Seconds { get; } = new();

    public ApiMetrics()
    {
        var f = Metrics.WithCustomRegistry(Registry);
        Requests = f.CreateCounter("actorquery_requests_total", "HTTP requests by endpoint and status.", "endpoint", "status");
        Refused = f.CreateCounter("actorquery_refused_total", "Queries refused before running, by reason.", "reason");
        QueueDepth = f.CreateGauge("actorquery_queue_depth", "Queries waiting in the router's queue.");
        InFlight = f.CreateGauge("actorquery_requests_in_flight", "Queries admitted and running.");
        TimeToFirstToken = f.CreateHistogram("actorquery_time_to_first_token_seconds", "Time from submit to the first token.",
            new HistogramConfiguration { Buckets = LatencyBuckets });
        InterTokenLatency = f.CreateHistogram("actorquery_inter_token_latency_seconds", "Time between two tokens of one query.",
            new HistogramConfiguration { Buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
        RequestDuration = f.CreateHistogram("actorquery_request_duration_seconds", "Duration of generation requests, end to end.",
            new HistogramConfiguration { Buckets = LatencyBuckets });
        PromptTokens = f.CreateCounter("actorquery_prompt_tokens_total", "Prompt tokens of submitted queries.");
        CachedPromptTokens = f.CreateCounter("actorquery_prompt_tokens_cached_total",
            "Prompt tokens of completed queries whose KV cache came from an engine's prefix cache (or whose answer came from the answer cache), not computed.");
        GeneratedTokens = f.CreateCounter("actorquery_generated_tokens_total", "Tokens generated.");
        ModelRestarts = f.CreateCounter("actorquery_model_restarts_total", "Model worker restarts, by reason (oom, other).", "reason");
        Oom = f.CreateCounter("actorquery_oom_total", "Out-of-memory errors the workers survived.");
        MemoryBytes = f.CreateGauge("actorquery_memory_bytes",
            "This node's memory as the watchdog last read it next to its plan, by kind: actuals (resident, managed, device, "
            + "unaccounted, headroom), the limit and budget, the plan (planned, runtime_overhead, weights, load_overhead, "
            + "activation_peak, kv_pool, kv_used) and the watchdog's marks (cleanup_at, pause_at, shed_at).", "kind");
        KvCacheTokens = f.CreateGauge("actorquery_kv_cache_tokens", "KV-cache tokens of this node's workers, by kind (capacity, used, free).", "kind");
        WatchdogState = f.CreateGauge("actorquery_memory_state", "The memory watchdog's state: 0 normal, 1 cleanup, 2 paused, 3 shedding.");
        MemoryPaused = f.CreateGauge("actorquery_memory_paused", "1 while memory pressure pauses admission (the router refuses new queries), else 0.");
        MemoryCleanups = f.CreateCounter("actorquery_memory_cleanups_total", "Cleanups the memory watchdog asked for (above its cleanup mark).");
        MemoryPauses = f.CreateCounter("actorquery_memory_pauses_total", "Times the memory watchdog paused admission (above its pause mark).");
        MemorySheds = f.CreateCounter("actorquery_memory_sheds_total", "Watchdog readings above the shed mark (the workers preempted their newest sequences).");
        CacheHits = f.CreateCounter("actorquery_cache_hits_total", "Query cache hits.");
        Resumes = f.CreateCounter("actorquery_resumes_total",
            "Queries continued on another worker from the tokens generated so far, after their worker was lost (out of memory, crash, node lost).");
        CacheMisses = f.CreateCounter("actorquery_cache_misses_total", "Query cache misses.");
        WorkersReady = f.CreateGauge("actorquery_workers_ready", "Model workers ready to take queries.");
        Alerts = f.CreateCounter("actorquery_alerts_total", "Alerts fired, by kind (see the README's Alerts section).", "kind");
        ModelRequests = f.CreateCounter("actorquery_model_requests_total", "Generation requests, by model.", "model");
        ModelTokens = f.CreateCounter("actorquery_model_tokens_total", "Tokens by model and kind (prompt, generated).", "model", "kind");
        ModelLoads = f.CreateCounter("actorquery_model_loads_total", "Loads of a pooled model.", "model");
        ModelUnloads = f.CreateCounter("actorquery_model_unloads_total", "Unloads of a pooled model (keep-alive, eviction, admin).", "model");
        ModelEvictions = f.CreateCounter("actorquery_model_evictions_total",
            "Unloads of an idle pooled model to make room for another (least recently used first).", "model");
        ModelLoadSeconds = f.CreateGauge("actorquery_model_load_seconds", "Seconds the last load of a pooled model took until a worker was ready.", "model");
        ModelLoaded = f.CreateGauge("actorquery_model_loaded", "1 while a pooled model is ready, else 0.", "model");
        ModelResidentBytes = f.CreateGauge("actorquery_model_resident_bytes", "Resident memory of a pooled model's worker processes.", "model");
        // Label sets that exist from the start, so that dashboards see zeros rather than gaps.
        ModelRestarts.WithLabels("oom");
        ModelRestarts.WithLabels("other");
        foreach (var r in Enum.GetNames<RefusalReason>()) Refused.WithLabels(r);
        foreach (var k in Dashboard.AlertKinds.All) Alerts.WithLabels(k);
    }

    /// <summary>Copies the router's figures into the gauges and the cumulative counters.</summary>
    /// <summary>The model pool's counters and states, at each scrape.</summary>
    public void Apply(ActorQuery.Actors.Workers.ModelPoolView pool)
    {
        foreach (var m in pool.Models)
        {
            ModelLoads.WithLabels(m.Name).IncTo(m.Loads);
            ModelUnloads.WithLabels(m.Name).IncTo(m.Unloads);
            ModelEvictions.WithLabels(m.Name).IncTo(m.Evictions);
            ModelLoadSeconds.WithLabels(m.Name).Set(m.LoadSeconds);
            ModelLoaded.WithLabels(m.Name).Set(m.State == "ready" ? 1 : 0);
            ModelResidentBytes.WithLabels(m.Name).Set(m.ResidentBytes ?? 0);
        }
    }

    public void Apply(RouterStatus status)
    {
        QueueDepth.Set(status.Queued);
        InFlight.Set(status.InFlight);
        WorkersReady.Set(status.Workers.Count(w => w.State == WorkerState.Ready));
        long restarts = status.Workers.Sum(w => (long)w.Restarts);
        long ooms = status.Workers.Sum(w => (long)w.OomCount);
        ModelRestarts.WithLabels("oom").IncTo(ooms);
        ModelRestarts.WithLabels("other").IncTo(Math.Max(0, restarts - ooms));
        Oom.IncTo(ooms);
        CacheHits.IncTo(status.Cache.Hits);
        CacheMisses.IncTo(status.Cache.Misses);
        if (status.Counters is { } c) Resumes.IncTo(c.Resumed);
        var kv = Endpoints.MemoryReports.Kv(status.Workers.Where(w => w.Node == status.Node).ToList());
        KvCacheTokens.WithLabels("capacity").Set(kv.CapacityTokens);
        KvCacheTokens.WithLabels("used").Set(kv.UsedTokens);
        KvCacheTokens.WithLabels("free").Set(kv.FreeTokens);
        MemoryPaused.Set(status.Paused ? 1 : 0);
        if (status.Memory is { } m) ApplyMemory(m);
    }

    private void ApplyMemory(MemoryStatus m)
    {
        void Bytes(string kind, long value) => MemoryBytes.WithLabels(kind).Set(value);
        Bytes("resident", m.ResidentBytes);
        Bytes("managed", m.ManagedBytes);
        if (m.DeviceBytes is { } d) Bytes("device", d);
        Bytes("unaccounted", m.UnaccountedBytes);
        Bytes("headroom", m.HeadroomBytes);
        Bytes("limit", m.LimitBytes);
        Bytes("budget", m.BudgetBytes);
        Bytes("planned", m.PlannedBytes);
        Bytes("runtime_overhead", m.HeldBytes);
        Bytes("weights", m.WeightBytes);
        Bytes("load_overhead", m.LoadOverheadBytes);
        Bytes("activation_peak", m.ActivationPeakBytes);
        Bytes("kv_pool", m.KvCacheBytes);
        Bytes("kv_used", m.KvUsedBytes);
        Bytes("cleanup_at", m.CleanupAtBytes);
        Bytes("pause_at", m.PauseAtBytes);
        Bytes("shed_at", m.ShedAtBytes);
        WatchdogState.Set((int)m.State);
        MemoryCleanups.IncTo(m.Cleanups);
        MemoryPauses.IncTo(m.Pauses);
        MemorySheds.IncTo(m.Sheds);
    }
}
