namespace ActorQuery.Api.Dashboard;

/// <summary>
/// The dashboard's timeline: the last <see cref="Capacity"/> entries (alerts firing and resolved, out-of-memory errors,
/// restarts, workers changing state), and a feed of new ones for the open <c>/events</c> streams. Thread-safe.
/// </summary>
public sealed class Timeline
{
    public const int Capacity = 200;

    private readonly Queue<TimelineEntry> _entries = new();
    private readonly List<Action<TimelineEntry>> _subscribers = new();
    private readonly Lock _lock = new();
    private long _nextId;

    public TimelineEntry Add(DateTimeOffset time, string kind, string severity, string? node, string? worker, string message, string? alert = null)
    {
        TimelineEntry entry;
        Action<TimelineEntry>[] subscribers;
        lock (_lock)
        {
            entry = new TimelineEntry(++_nextId, time, kind, severity, node, worker, message, alert);
            _entries.Enqueue(entry);
            while (_entries.Count > Capacity) _entries.Dequeue();
            subscribers = _subscribers.ToArray();
        }
        foreach (var s in subscribers) s(entry);
        return entry;
    }

    /// <summary>The entries kept, oldest first.</summary>
    public IReadOnlyList<TimelineEntry> Recent()
    {
        lock (_lock) return _entries.ToList();
    }

    /// <summary>Calls <paramref name="onEntry"/> with every entry added from now on, until the result is disposed.
    /// The callback runs on the thread that adds, so it must not block.</summary>
    public IDisposable Subscribe(Action<TimelineEntry> onEntry)
    {
        lock (_lock) _subscribers.Add(onEntry);
        return new Subscription(this, onEntry);
    }

    private sealed class Subscription(Timeline timeline, Action<TimelineEntry> onEntry) : IDisposable
    {
        public void Dispose()
        {
            lock (timeline._lock) timeline._subscribers.Remove(onEntry);
        }
    }
}
