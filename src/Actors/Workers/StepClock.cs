namespace ActorQuery.Actors.Workers;

/// <summary>
/// When the engine step now running started: set by a <see cref="ModelActor"/> around each step on its pinned thread and
/// read by its <see cref="ModelSupervisor"/> on a timer. Shared state rather than a message because a step that never
/// returns is exactly when the ModelActor can send none. Thread-safe.
/// </summary>
public sealed class StepClock
{
    private long _startedAt = -1;

    public void Start() => Volatile.Write(ref _startedAt, Environment.TickCount64);

    public void Stop() => Volatile.Write(ref _startedAt, -1);

    /// <summary>How long the running step has run; null between steps.</summary>
    public TimeSpan? Running
    {
        get
        {
            long started = Volatile.Read(ref _startedAt);
            return started < 0 ? null : TimeSpan.FromMilliseconds(Environment.TickCount64 - started);
        }
    }
}
