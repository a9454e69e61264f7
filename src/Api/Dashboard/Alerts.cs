namespace ActorQuery.Api.Dashboard;

/// <summary>The alert kinds, as they appear in <c>actorquery_alerts_total{kind}</c>, the log, the timeline and the webhook.</summary>
public static class AlertKinds
{
    public const string MemoryAboveCleanup = "memory_above_cleanup";
    public const string MemoryAbovePause = "memory_above_pause";
    public const string AdmissionPaused = "admission_paused";
    public const string OomRecovered = "oom_recovered";
    public const string WorkerRestarted = "worker_restarted";
    public const string WorkerDegraded = "worker_degraded";
    public const string WorkerFailed = "worker_failed";
    public const string NodeUnreachable = "node_unreachable";

    public static readonly IReadOnlyList<string> All =
        [MemoryAboveCleanup, MemoryAbovePause, AdmissionPaused, OomRecovered, WorkerRestarted, WorkerDegraded, WorkerFailed, NodeUnreachable];
}

/// <summary>
/// An alert as it fires (<see cref="Status"/> "firing") or clears ("resolved"): the webhook's JSON body, the log
/// event's properties and a timeline entry.
/// </summary>
/// <param name="Severity">"warning" or "critical".</param>
/// <param name="Worker">The worker it concerns; null for node-wide alerts (memory, admission, reachability).</param>
/// <param name="Values">The numbers behind it (bytes against a mark, counts), by name.</param>
public sealed record Alert(string Kind, string Status, string Severity, string Node, string? Worker, string Message,
    IReadOnlyDictionary<string, object?> Values, DateTimeOffset Time)
{
    /// <summary>One alert per kind and subject at a time: what "once while the condition holds" counts by.</summary>
    public string Key => $"{Kind}|{Node}|{Worker}";
}

/// <summary>One line of the dashboard's timeline.</summary>
/// <param name="Kind">An alert kind, or an occurrence: <c>oom</c>, <c>restart</c>, <c>worker_state</c>.</param>
/// <param name="Severity">"info", "warning" or "critical".</param>
/// <param name="Alert">"firing" or "resolved" for alerts; null for occurrences.</param>
public sealed record TimelineEntry(long Id, DateTimeOffset Time, string Kind, string Severity, string? Node, string? Worker,
    string Message, string? Alert);
