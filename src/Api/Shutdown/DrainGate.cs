namespace ActorQuery.Api.Shutdown;

/// <summary>
/// Counts generation requests in progress and, once shutdown begins, turns new ones away (503) so that the
/// running ones can finish within the drain timeout.
/// </summary>
public sealed class DrainGate
{
    private int _active;
    private volatile bool _draining;

    public bool IsDraining => _draining;
    public int Active => Volatile.Read(ref _active);

    public void BeginDrain() => _draining = true;

    public bool TryEnter()
    {
        if (_draining) return false;
        Interlocked.Increment(ref _active);
        if (!_draining) return true;
        Interlocked.Decrement(ref _active); // shutdown began between the check and the increment
        return false;
    }

    public void Exit() => Interlocked.Decrement(ref _active);

    /// <summary>True when every request finished within <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitIdleAsync(TimeSpan timeout, CancellationToken ct)
    {
        // Polling keeps this free of lost-wakeup races; 50 ms is nothing next to a drain of seconds.
        var deadline = DateTime.UtcNow + timeout;
        while (Active > 0)
        {
            if (DateTime.UtcNow >= deadline || ct.IsCancellationRequested) return false;
            try { await Task.Delay(50, ct); } catch (OperationCanceledException) { return false; }
        }
        return true;
    }
}
