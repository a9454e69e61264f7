namespace ActorQuery.Api.Dtos;

/// <param name="Status">"ok", "no_model_ready", "memory_pressure" (the watchdog paused admission) or "shutting_down".</param>
/// <param name="PauseReason">Why admission is paused (the watchdog's reading against its mark); null while it is not.</param>
public sealed record HealthResponse(
    string Status, bool Ready, string? Node, string Model, bool Draining, bool Paused,
    int InFlight, int Queued, int MaxInFlight, int MaxQueue, IReadOnlyList<WorkerHealth> Workers, string? Error = null,
    string? PauseReason = null, IReadOnlyList<ActorQuery.Actors.Workers.WorkerProcessInfo>? WorkerProcesses = null);

public sealed record WorkerHealth(
    string Worker, string Node, string State, string? Model, int Running, int Queued, int KvFreeTokens, int KvCapacityTokens,
    int Restarts, int OomCount, DateTimeOffset? LastOom, bool Degraded, string? DegradedReason, string? Error);

/// <summary>GET /memory: the node's memory plan next to what the watchdog last read. <see cref="Limit"/>, <see cref="Plan"/>,
/// <see cref="Actual"/> and <see cref="Watchdog"/> are null while there is no reading (the watchdog is off);
/// <see cref="Kv"/> and <see cref="Workers"/> come from the workers' own status and are always there.</summary>
/// <param name="Summary">One line for people: resident against the limit, the plan's terms, the headroom, the watchdog's state.</param>
public sealed record MemoryResponse(
    string Node, string Summary, MemoryLimitReport? Limit, MemoryPlanReport? Plan, MemoryActualReport? Actual, KvReport Kv,
    WatchdogReport? Watchdog, IReadOnlyList<WorkerMemory> Workers, CacheReport Cache)
{
    /// <summary>A node that runs its workers in child processes: each process's own /memory (its plan, its watchdog);
    /// the fields above are then the server process's. Null where the workers run in the server process.</summary>
    public IReadOnlyList<WorkerProcessMemory>? WorkerProcesses { get; init; }
}

/// <param name="Memory">The process's own GET /memory; null (with <paramref name="Error"/>) while it cannot answer.</param>
public sealed record WorkerProcessMemory(int Id, int? Pid, string State, string? Url, long? ResidentBytes,
    System.Text.Json.JsonElement? Memory, string? Error);

/// <param name="Bytes">The real limit: the smallest of physical memory, the memory cgroup's limit and --memory-limit.</param>
/// <param name="Source">Where <paramref name="Bytes"/> comes from: "physical memory", "cgroup limit" or "--memory-limit".</param>
/// <param name="BudgetBytes">What the workers together may add: limit × utilization, less what the process held at start.</param>
/// <param name="Device">The accelerator's own limit and budget where the workers run on one (CUDA); null on the CPU.</param>
public sealed record MemoryLimitReport(long Bytes, string Source, double Utilization, long BudgetBytes, DeviceLimitReport? Device);

/// <param name="Source">Where <paramref name="Bytes"/> comes from, e.g. "CUDA device 0 (cudaMemGetInfo)".</param>
/// <param name="Bytes">The device's total memory.</param>
/// <param name="BudgetBytes">What the workers on it may use: total × utilization, less what was in use on it before they loaded.</param>
/// <param name="UsedBytes">In use on it at the last reading.</param>
public sealed record DeviceLimitReport(string Source, long Bytes, long BudgetBytes, long? UsedBytes);

/// <summary>The host-memory plan of this node's workers (workers on an accelerator plan device memory and are not in it).</summary>
/// <param name="RuntimeOverheadBytes">Resident bytes before any model: the runtime and its libraries.</param>
/// <param name="LoadingShareBytes">The budget shares of workers still loading, promised to them whole until they report their plan.</param>
/// <param name="PlannedBytes">The sum of all the above.</param>
public sealed record MemoryPlanReport(
    long RuntimeOverheadBytes, long WeightsBytes, long LoadOverheadBytes, long ActivationPeakBytes, long KvPoolBytes,
    long LoadingShareBytes, long PlannedBytes);

/// <param name="DeviceBytes">Accelerator memory in use, where the device can tell (CUDA); null on CPU.</param>
/// <param name="UnaccountedBytes">Resident memory the plan does not name: resident less runtime, weights, load overhead and KV
/// pool (activations in use, allocator caches, leaks). The activation peak is room planned for part of it.</param>
/// <param name="HeadroomBytes">The limit less resident memory.</param>
public sealed record MemoryActualReport(long ResidentBytes, long ManagedBytes, long? DeviceBytes, long UnaccountedBytes, long HeadroomBytes);

/// <summary>The KV caches of this node's workers, summed.</summary>
/// <param name="BytesPerToken">KV bytes one token takes, when every worker that reports it agrees; else null.</param>
public sealed record KvReport(
    long CapacityTokens, long UsedTokens, long FreeTokens, long CapacityBytes, long UsedBytes, long FreeBytes, long? BytesPerToken);

/// <param name="State">"normal", "cleanup" (freeing what can be freed), "paused" (admission paused) or "shedding" (also
/// preempting the newest sequences).</param>
/// <param name="Reason">Why admission is paused; null while it is not.</param>
/// <param name="CleanupMark">Fractions of the plan's headroom (limit less plan), above the plan, where the watchdog cleans up, pauses and sheds.</param>
/// <param name="CleanupAtBytes">The marks in resident bytes: plan + mark × (limit − plan).</param>
public sealed record WatchdogReport(
    string State, string? Reason, double CleanupMark, double PauseMark, double ShedMark,
    long CleanupAtBytes, long PauseAtBytes, long ShedAtBytes, long ReadEveryMs,
    long Cleanups, long Pauses, long Sheds, DateTimeOffset At);

/// <param name="MemoryPressure">Why the worker's node takes no new queries (its watchdog paused admission); null: it takes them.</param>
/// <param name="OnDevice">Its bytes are the accelerator's, not the host's.</param>
public sealed record WorkerMemory(
    string Worker, string Node, string State, string? Device, string? MemoryPressure,
    long WeightsBytes, long LoadOverheadBytes, long ActivationPeakBytes, long KvPoolBytes, long KvUsedBytes,
    int KvCapacityTokens, int KvFreeTokens, int KvBlockSize, bool OnDevice,
    int OomCount, DateTimeOffset? LastOom, bool Degraded, string? DegradedReason);

public sealed record CacheReport(int Entries, long Bytes, long Hits, long Misses);

public sealed record IndexResponse(string Name, string Model, IReadOnlyDictionary<string, string> Endpoints);
