using ActorQuery.Contracts;

namespace ActorQuery.Actors;

// Plain typed records with defaults. The Host fills them from its one table of settings (src/Host/Serve/ServeSettings.cs:
// configuration keys, environment variables, command line, limits), which validates every value once at start; the
// actors take them as valid and do not check them again. The table's defaults are these records' defaults.

/// <summary>Everything <see cref="Hosting.ActorQueryHosting.AddActorQueryNode"/> needs to wire one node.</summary>
public sealed record ActorQueryNodeOptions
{
    /// <summary>Name of this node in statuses (defaults to the machine name).</summary>
    public string Node { get; init; } = Environment.MachineName;
    public RouterOptions Router { get; init; } = new();
    public WorkerOptions Workers { get; init; } = new();
    public WatchdogOptions Watchdog { get; init; } = new();
    public CacheOptions Cache { get; init; } = new();
    public FaultOptions Faults { get; init; } = new();
}

/// <summary>Admission limits of the QueryRouter.</summary>
public sealed record RouterOptions
{
    /// <summary>Queries dispatched to workers at once.</summary>
    public int MaxInFlight { get; init; } = 8;
    /// <summary>Queries waiting in the router beyond <see cref="MaxInFlight"/>; more are refused QueueFull.</summary>
    public int MaxQueue { get; init; } = 64;
    /// <summary>Deadline of a query that names none.</summary>
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>Retry-After of a QueueFull refusal.</summary>
    public TimeSpan QueueFullRetryAfter { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Retry-After of a MemoryPressure refusal (the watchdog ticks every 5 s by default).</summary>
    public TimeSpan MemoryPressureRetryAfter { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Retry-After of a NoModelReady refusal.</summary>
    public TimeSpan NoModelRetryAfter { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How often a query whose worker gave it back before its first token may be dispatched in all (1 + retries).</summary>
    public int MaxAttempts { get; init; } = 2;
    /// <summary>How often a query whose worker was lost after it generated tokens is resumed from them on another
    /// worker; once more fails it with the reason, so that a query that crashes workers cannot do it forever.</summary>
    public int MaxResumes { get; init; } = 2;
}

/// <summary>The workers of a node (ModelSupervisor + ModelActor each) and their out-of-memory ladder.</summary>
public sealed record WorkerOptions
{
    /// <summary>Workers (model copies) on this node; 0 for a gateway-only node (router, no model).</summary>
    public int Count { get; init; } = 1;
    /// <summary>The number in the first worker's name (<c>worker-N</c>); a node's worker processes number their workers on
    /// from one another's, so that every worker of a node has its own name.</summary>
    public int FirstNumber { get; init; } = 1;
    /// <summary>Most sequences one engine runs at once (before degradation).</summary>
    public int MaxBatch { get; init; } = EngineDefaults.MaxBatchSequences;
    /// <summary>Dispatcher of the ModelActors: one dedicated thread each (declared in hocon/actors.hocon).</summary>
    public string Dispatcher { get; init; } = "actorquery.model-dispatcher";
    /// <summary>First restart delay after a failure; doubles per consecutive failure up to <see cref="BackoffMax"/>.</summary>
    public TimeSpan BackoffMin { get; init; } = TimeSpan.FromMilliseconds(500);
    public TimeSpan BackoffMax { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Random extra delay, as a fraction of the delay (0.2 = up to +20%), so that workers do not reload in lockstep.</summary>
    public double BackoffJitter { get; init; } = 0.2;
    /// <summary>A worker that stayed up this long starts its backoff from <see cref="BackoffMin"/> again.</summary>
    public TimeSpan BackoffResetAfter { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>This many out-of-memory failures within <see cref="OomWindow"/> degrade the worker one level.</summary>
    public int DegradeAfterOoms { get; init; } = 3;
    public TimeSpan OomWindow { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Levels of "half the KV budget and batch" before giving up on shrinking (then CPU if allowed).</summary>
    public int MaxDegradeLevels { get; init; } = 3;
    /// <summary>After the last shrinking level, load on the CPU (for a GPU model). Off by default.</summary>
    public bool CpuFallback { get; init; }
    /// <summary>Loads that fail before the worker is marked Failed: an out-of-memory degrades first, any other error
    /// is tried again after the backoff (a driver or file that was busy).</summary>
    public int MaxLoadAttempts { get; init; } = 4;
    /// <summary>A step that has not returned after this long while work is pending marks the worker hung; zero: never.</summary>
    public TimeSpan StepTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>A hung step ends the process (a worker process: its parent restarts it and its queries resume) instead
    /// of failing the worker in place (its thread cannot be reclaimed; /health/live turns 503).</summary>
    public bool ExitProcessOnHungStep { get; init; }
}

/// <summary>The MemoryWatchdog's readings and marks. The limit and budget are the node's <see cref="MemoryBudget"/>; the
/// marks are fractions of the headroom its plan leaves (limit less plan), above the plan.</summary>
public sealed record WatchdogOptions
{
    public bool Enabled { get; init; } = true;
    /// <summary>The longest wait between readings below the cleanup mark; memory growing toward the mark is read sooner.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>How often it reads memory above the cleanup mark, to act before the kernel would.</summary>
    public TimeSpan FastInterval { get; init; } = TimeSpan.FromMilliseconds(100);
    /// <summary>Above plan + this × headroom the workers and the answer cache free what they can.</summary>
    public double CleanupMark { get; init; } = 0.5;
    /// <summary>Above plan + this × headroom admission pauses, until memory is back under the cleanup mark.</summary>
    public double PauseMark { get; init; } = 0.8;
    /// <summary>Above plan + this × headroom the workers also preempt their newest sequences and hold their steps.</summary>
    public double ShedMark { get; init; } = 0.95;
    /// <summary>The longest the workers hold their steps while memory stays above the shed mark. After it they step on:
    /// memory that holding did not bring back (a real leak) is then left to the kernel, and the node restarts a killed
    /// worker process and resumes its queries.</summary>
    public TimeSpan ShedHold { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>After a cleanup that freed little (under 1% of the headroom), the next waits this long.</summary>
    public TimeSpan CleanupBackoff { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>The QueryCache of finished deterministic answers.</summary>
public sealed record CacheOptions
{
    public bool Enabled { get; init; } = true;
    public int MaxEntries { get; init; } = 1024;
    public long MaxBytes { get; init; } = 64L * 1024 * 1024;
}
