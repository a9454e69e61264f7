using ActorQuery.Contracts;

namespace ActorQuery.Actors.Workers;

/// <summary>
/// The bookkeeping of the supervisor's out-of-memory ladder, kept apart from the actor so that it can be read
/// (and tested) as plain rules: exponential backoff with jitter, OOMs counted in a sliding window, degradation
/// levels. Not thread-safe: the ModelSupervisor owns it.
/// </summary>
public sealed class RestartPolicy(WorkerOptions options, bool canFallBackToCpu, Func<double> random)
{
    private readonly Queue<DateTimeOffset> _recentOoms = new();

    public int ConsecutiveFailures { get; private set; }
    public int DegradeLevel { get; private set; }
    public string? DegradedReason { get; private set; }

    /// <summary>The deepest level: the shrinking levels, plus one for the CPU fallback where it applies.</summary>
    public int MaxLevel => options.MaxDegradeLevels + (options.CpuFallback && canFallBackToCpu ? 1 : 0);

    public EngineLoadSettings Settings
    {
        get
        {
            int shrink = Math.Min(DegradeLevel, options.MaxDegradeLevels);
            bool cpu = DegradeLevel > options.MaxDegradeLevels;
            double fraction = Math.Pow(0.5, shrink);
            int batch = Math.Max(1, options.MaxBatch >> shrink);
            return new EngineLoadSettings(fraction, batch, cpu, DegradeLevel);
        }
    }

    /// <summary>Delay before the next load: min × 2^(failures-1), capped, plus up to <see cref="WorkerOptions.BackoffJitter"/> of it.</summary>
    public TimeSpan NextDelay() => ConsecutiveFailures == 0 ? TimeSpan.Zero : Backoff(options, ConsecutiveFailures, random());

    /// <summary>The backoff after <paramref name="failures"/> (≥ 1) failures in a row: min × 2^(failures-1), capped at
    /// max, plus <paramref name="random"/> (in [0, 1)) × jitter of it. Worker processes restart on the same ladder.</summary>
    public static TimeSpan Backoff(WorkerOptions options, int failures, double random)
    {
        double ms = options.BackoffMin.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 30));
        ms = Math.Min(ms, options.BackoffMax.TotalMilliseconds);
        ms += ms * options.BackoffJitter * random;
        return TimeSpan.FromMilliseconds(ms);
    }

    /// <summary>Called once the engine served for a while (see <see cref="WorkerOptions.BackoffResetAfter"/>).</summary>
    public void ResetBackoff() => ConsecutiveFailures = 0;

    /// <summary>Records a failure; returns true when it degraded the worker one more level.</summary>
    public bool RecordFailure(bool outOfMemory, DateTimeOffset now)
    {
        ConsecutiveFailures++;
        if (!outOfMemory) return false;
        _recentOoms.Enqueue(now);
        while (_recentOoms.Count > 0 && now - _recentOoms.Peek() > options.OomWindow) _recentOoms.Dequeue();
        if (_recentOoms.Count < options.DegradeAfterOoms) return false;
        return Degrade($"{_recentOoms.Count} out-of-memory failures within {options.OomWindow.TotalSeconds:0}s");
    }

    /// <summary>Steps down one level (a load that ran out of memory degrades at once). False at the last level.</summary>
    public bool Degrade(string why)
    {
        _recentOoms.Clear();
        if (DegradeLevel >= MaxLevel) return false;
        DegradeLevel++;
        DegradedReason = $"{why}: degraded to level {DegradeLevel} ({Settings.Describe()})";
        return true;
    }
}
