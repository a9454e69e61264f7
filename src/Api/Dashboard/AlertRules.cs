using ActorQuery.Actors;
using ActorQuery.Actors.Cluster;
using ActorQuery.Contracts;

namespace ActorQuery.Api.Dashboard;

/// <summary>Something that happened, for the timeline only (it is no alert by itself): an out-of-memory, a restart, a
/// worker changing state.</summary>
public sealed record Occurrence(string Kind, string Severity, string Node, string? Worker, string Message);

/// <summary>What one evaluation found: alerts that fired or resolved, and occurrences since the last one.</summary>
public sealed record AlertEvaluation(IReadOnlyList<Alert> Changes, IReadOnlyList<Occurrence> Occurrences);

/// <summary>
/// The alert rules, evaluated over successive router statuses (and the cluster view where there is one). A condition
/// fires once when it starts to hold and resolves once when it stops; nothing is sent in between however often it is
/// evaluated. Conditions:
/// <list type="bullet">
/// <item><c>memory_above_cleanup</c> (warning) and <c>memory_above_pause</c> (critical): resident memory at or above the
///   watchdog's cleanup / pause mark;</item>
/// <item><c>admission_paused</c> (critical): the router refuses new queries for memory pressure;</item>
/// <item><c>oom_recovered</c> and <c>worker_restarted</c> (warning), per worker: its out-of-memory count, or its restarts
///   for other reasons, went up; these hold until <see cref="EventHold"/> passes without another;</item>
/// <item><c>worker_degraded</c> (warning) and <c>worker_failed</c> (critical), per worker, while it is so;</item>
/// <item><c>node_unreachable</c> (critical), per member the failure detector has lost.</item>
/// </list>
/// Not thread-safe: one evaluator (<see cref="AlertMonitor"/>) calls it.
/// </summary>
public sealed class AlertRules(TimeSpan eventHold)
{
    public TimeSpan EventHold { get; } = eventHold;

    private readonly Dictionary<string, Alert> _firing = new();
    private readonly Dictionary<string, WorkerStatus> _lastWorkers = new();
    /// <summary>When each worker's out-of-memory / restart last went up, by alert key.</summary>
    private readonly Dictionary<string, DateTimeOffset> _lastOccurrence = new();

    /// <summary>The alerts firing now.</summary>
    public IReadOnlyCollection<Alert> Firing => _firing.Values;

    public AlertEvaluation Evaluate(RouterStatus status, ClusterView? cluster, DateTimeOffset now)
    {
        var held = new Dictionary<string, Alert>();
        var occurrences = new List<Occurrence>();
        void Hold(string kind, string severity, string node, string? worker, string message, Dictionary<string, object?> values)
        {
            var a = new Alert(kind, "firing", severity, node, worker, message, values, now);
            held[a.Key] = a;
        }

        if (status.Memory is { } m)
        {
            var values = new Dictionary<string, object?>
            {
                ["resident_bytes"] = m.ResidentBytes, ["cleanup_at_bytes"] = m.CleanupAtBytes, ["pause_at_bytes"] = m.PauseAtBytes,
                ["limit_bytes"] = m.LimitBytes, ["planned_bytes"] = m.PlannedBytes,
            };
            if (m.ResidentBytes >= m.CleanupAtBytes)
                Hold(AlertKinds.MemoryAboveCleanup, "warning", status.Node, null,
                    $"memory {MemorySize.Format(m.ResidentBytes)} is above the cleanup mark {MemorySize.Format(m.CleanupAtBytes)} of the {m.LimitSource} {MemorySize.Format(m.LimitBytes)}", values);
            if (m.ResidentBytes >= m.PauseAtBytes)
                Hold(AlertKinds.MemoryAbovePause, "critical", status.Node, null,
                    $"memory {MemorySize.Format(m.ResidentBytes)} is above the pause mark {MemorySize.Format(m.PauseAtBytes)} of the {m.LimitSource} {MemorySize.Format(m.LimitBytes)}", values);
        }
        if (status.Paused)
            Hold(AlertKinds.AdmissionPaused, "critical", status.Node, null,
                $"admission paused: {status.PauseReason ?? "memory pressure"}",
                new() { ["resident_bytes"] = status.Memory?.ResidentBytes, ["pause_at_bytes"] = status.Memory?.PauseAtBytes, ["in_flight"] = status.InFlight });

        foreach (var w in status.Workers)
        {
            string id = $"{w.Node}/{w.Worker}";
            _lastWorkers.TryGetValue(id, out var before);
            int oomsBefore = before?.OomCount ?? 0, otherBefore = before is null ? 0 : Math.Max(0, before.Restarts - before.OomCount);
            int other = Math.Max(0, w.Restarts - w.OomCount);
            if (w.OomCount > oomsBefore)
            {
                _lastOccurrence[$"{AlertKinds.OomRecovered}|{w.Node}|{w.Worker}"] = now;
                occurrences.Add(new("oom", "warning", w.Node, w.Worker,
                    $"{w.Worker} ran out of memory and recovered ({w.OomCount} in all; now {Name(w.State)})"));
            }
            if (other > otherBefore)
            {
                _lastOccurrence[$"{AlertKinds.WorkerRestarted}|{w.Node}|{w.Worker}"] = now;
                occurrences.Add(new("restart", "warning", w.Node, w.Worker, $"{w.Worker} restarted after a failure ({w.Restarts} restarts in all)"));
            }
            if (before is not null && before.State != w.State)
                occurrences.Add(new("worker_state", w.State == WorkerState.Failed ? "critical" : "info", w.Node, w.Worker,
                    $"{w.Worker} {Name(before.State)} → {Name(w.State)}{(w.Error is null ? "" : $": {w.Error}")}"));
            _lastWorkers[id] = w;

            if (Recent(AlertKinds.OomRecovered, w, now))
                Hold(AlertKinds.OomRecovered, "warning", w.Node, w.Worker,
                    $"{w.Worker} survived an out-of-memory ({w.OomCount} in all), restarted with cleanup",
                    new() { ["oom_count"] = w.OomCount, ["restarts"] = w.Restarts, ["state"] = Name(w.State) });
            if (Recent(AlertKinds.WorkerRestarted, w, now))
                Hold(AlertKinds.WorkerRestarted, "warning", w.Node, w.Worker, $"{w.Worker} restarted ({w.Restarts} restarts in all)",
                    new() { ["restarts"] = w.Restarts, ["state"] = Name(w.State) });
            if (w.Degraded)
                Hold(AlertKinds.WorkerDegraded, "warning", w.Node, w.Worker, $"{w.Worker} degraded: {w.DegradedReason ?? "repeated out-of-memory"}",
                    new() { ["degrade_level"] = w.DegradeLevel, ["max_batch"] = w.MaxBatch, ["kv_capacity_tokens"] = w.KvCapacityTokens });
            if (w.State == WorkerState.Failed)
                Hold(AlertKinds.WorkerFailed, "critical", w.Node, w.Worker, $"{w.Worker} failed: {w.Error ?? "no reason given"}",
                    new() { ["restarts"] = w.Restarts, ["oom_count"] = w.OomCount });
        }

        foreach (var member in cluster?.Members ?? [])
            if (!member.Reachable)
                Hold(AlertKinds.NodeUnreachable, "critical", member.Address, null, $"node {member.Address} is unreachable",
                    new() { ["status"] = member.Status, ["roles"] = string.Join(",", member.Roles) });

        var changes = new List<Alert>();
        foreach (var (key, alert) in held)
            if (_firing.TryAdd(key, alert)) changes.Add(alert);
        foreach (var (key, alert) in _firing.ToList())
        {
            if (held.ContainsKey(key)) continue;
            _firing.Remove(key);
            changes.Add(Resolved(alert, status, now));
        }
        return new AlertEvaluation(changes, occurrences);
    }

    /// <summary>The resolution of <paramref name="alert"/>: what is true now, with the current numbers where there are
    /// any, and when it fired.</summary>
    private Alert Resolved(Alert alert, RouterStatus status, DateTimeOffset now)
    {
        var values = new Dictionary<string, object?>(alert.Values) { ["fired_at"] = alert.Time };
        var m = status.Memory;
        var worker = status.Workers.FirstOrDefault(w => w.Node == alert.Node && w.Worker == alert.Worker);
        if (m is not null && alert.Kind is AlertKinds.MemoryAboveCleanup or AlertKinds.MemoryAbovePause or AlertKinds.AdmissionPaused)
            foreach (var (name, current) in new[] { ("resident_bytes", m.ResidentBytes), ("cleanup_at_bytes", m.CleanupAtBytes), ("pause_at_bytes", m.PauseAtBytes) })
                if (values.ContainsKey(name)) values[name] = current;
        string F(long b) => MemorySize.Format(b);
        string held = $"{(now - alert.Time).TotalSeconds:0} s";
        string message = alert.Kind switch
        {
            AlertKinds.MemoryAboveCleanup when m is not null => $"memory {F(m.ResidentBytes)} is back under the cleanup mark {F(m.CleanupAtBytes)} after {held}",
            AlertKinds.MemoryAbovePause when m is not null => $"memory {F(m.ResidentBytes)} is back under the pause mark {F(m.PauseAtBytes)} after {held}",
            AlertKinds.AdmissionPaused => $"admission resumed after {held}",
            AlertKinds.OomRecovered => $"{alert.Worker}: no out-of-memory for {EventHold.TotalSeconds:0} s",
            AlertKinds.WorkerRestarted => $"{alert.Worker}: no restart for {EventHold.TotalSeconds:0} s",
            AlertKinds.WorkerDegraded => worker is null ? $"{alert.Worker} is gone" : $"{alert.Worker} is no longer degraded",
            AlertKinds.WorkerFailed => worker is null ? $"{alert.Worker} is gone" : $"{alert.Worker} is {Name(worker.State)} again",
            AlertKinds.NodeUnreachable => $"node {alert.Node} is reachable again or left the cluster",
            _ => $"cleared: {alert.Message}",
        };
        return alert with { Status = "resolved", Time = now, Message = message, Values = values };
    }

    private bool Recent(string kind, WorkerStatus w, DateTimeOffset now) =>
        _lastOccurrence.TryGetValue($"{kind}|{w.Node}|{w.Worker}", out var at) && now - at < EventHold;

    private static string Name(WorkerState s) => s.ToString().ToLowerInvariant();
}
