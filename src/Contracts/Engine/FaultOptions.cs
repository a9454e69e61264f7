namespace ActorQuery.Contracts;

/// <summary>
/// Faults to inject for tests and chaos runs (configuration section <c>ActorQuery:Faults</c>, e.g.
/// <c>ACTORQUERY__FAULTS__OOMEVERYNTHSTEP=40</c>). Everything is off by default.
/// </summary>
public sealed record FaultOptions
{
    /// <summary>Every Nth engine step (counted across restarts of the worker) raises an out-of-memory; 0 = never.</summary>
    public int OomEveryNthStep { get; init; }

    /// <summary>The first N load attempts of each worker fail with an out-of-memory; 0 = never.</summary>
    public int OomOnLoadAttempts { get; init; }

    /// <summary>Every Nth engine step raises a non-OOM exception (a crash); 0 = never.</summary>
    public int CrashEveryNthStep { get; init; }

    /// <summary>Each step sleeps this long first (simulates a slow model); 0 = no delay.</summary>
    public int StepDelayMs { get; init; }

    /// <summary>Exact 1-based step numbers (counted across restarts) that raise an out-of-memory; for deterministic specs.</summary>
    public IReadOnlyList<int> OomAtSteps { get; init; } = Array.Empty<int>();

    public bool Enabled => OomEveryNthStep > 0 || OomOnLoadAttempts > 0 || CrashEveryNthStep > 0 || StepDelayMs > 0
                           || OomAtSteps.Count > 0;
}

/// <summary>
/// Counters that outlive one engine: a restarted worker gets a fresh engine, but the fault schedule goes on
/// (otherwise "every 40th step" would hit the same step of every incarnation forever). Thread-safe.
/// </summary>
public sealed class FaultState
{
    private long _steps;
    private long _loads;

    public long Steps => Interlocked.Read(ref _steps);
    public long Loads => Interlocked.Read(ref _loads);
    public long InjectedOoms;
    public long InjectedCrashes;

    public long NextStep() => Interlocked.Increment(ref _steps);
    public long NextLoad() => Interlocked.Increment(ref _loads);
}
