namespace ActorQuery.Api.Dtos;

/// <summary>POST /admin/cleanup: what the memory watchdog's cleanup freed on every worker of this node.</summary>
/// <param name="CacheEntriesDropped">Answers the router's cache held (the cleanup drops them).</param>
/// <param name="Workers">One per worker, in this process or a worker process (<see cref="WorkerCleanup.Pid"/>).</param>
/// <param name="Server">The server process itself (the gateway: its request buffers, heaps and caches), collected and trimmed too.</param>
public sealed record CleanupResponse(string Node, int CacheEntriesDropped, long FreedBytes, IReadOnlyList<WorkerCleanup> Workers, ProcessCleanup? Server = null);

/// <summary>A process's resident bytes before and after a full garbage collection and malloc_trim.</summary>
public sealed record ProcessCleanup(int Pid, long ResidentBeforeBytes, long ResidentAfterBytes, long ManagedBeforeBytes, long ManagedAfterBytes);

/// <summary>One worker's cleanup. The bytes are its process's: the workers of one process share them, and the second
/// one's cleanup finds less to free.</summary>
/// <param name="State">The worker's state when asked; a failed or stopped worker has no engine, only its process is collected.</param>
public sealed record WorkerCleanup(string Worker, string Node, int Pid, string State, long ResidentBeforeBytes, long ResidentAfterBytes,
    long FreedBytes, long ManagedBeforeBytes, long ManagedAfterBytes);

/// <summary>The step faults of POST and GET /admin/faults; 0 is off.</summary>
/// <param name="HangAtStep">POST: the step that never returns, counted from now (1: the next step); GET: the worker's step
/// number that will hang (see <see cref="WorkerFaults.Steps"/>).</param>
public sealed record FaultsBody(long LeakBytesPerStep, int StepDelayMs, int OomEveryNthStep, int CrashEveryNthStep, int HangAtStep);

/// <summary>POST and GET /admin/faults: the faults armed on every worker of this node.</summary>
/// <param name="Armed">POST: what was armed (the body, defaults filled in); GET: null.</param>
public sealed record FaultsResponse(string Node, FaultsBody? Armed, IReadOnlyList<WorkerFaults> Workers);

/// <param name="Faults">Null: this worker's engines cannot inject faults.</param>
/// <param name="Steps">The worker's engine steps so far.</param>
/// <param name="LeakedBytes">Native memory the leak fault holds now (disarming it frees it).</param>
public sealed record WorkerFaults(string Worker, string Node, int Pid, FaultsBody? Faults, long Steps, long LeakedBytes);
