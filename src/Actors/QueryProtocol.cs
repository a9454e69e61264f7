using ActorQuery.Contracts;

namespace ActorQuery.Actors;

// The contract between the HTTP layer and the actors. Everything here is an immutable record of plain
// values (token ids, text, numbers) so that it can cross nodes; no tensor ever appears in a message.

/// <summary>A query as the API submits it: the prompt already tokenised with the served model's tokenizer.</summary>
public sealed record QueryRequest
{
    public required string QueryId { get; init; }
    public required IReadOnlyList<int> PromptTokenIds { get; init; }
    public required SamplingParams Sampling { get; init; }
    /// <summary>Generation stops when the text ends with one of these; the stop string is not returned.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = Array.Empty<string>();
    /// <summary>Null: the router's default deadline.</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>Null: whatever model the workers serve.</summary>
    public string? Model { get; init; }
    public bool SkipSpecialTokens { get; init; } = true;
    /// <summary>The client reads nothing before the end (a non-streamed HTTP request): the router holds the tokens
    /// until the query ends, and gives them all at once (those of a resumed query's earlier attempts first).</summary>
    public bool Buffered { get; init; }
    /// <summary>Set by the router when it resumes the query after its worker was lost: the tokens generated so far, in
    /// order. The worker prefills prompt + these and generates only the rest of <see cref="SamplingParams.MaxNewTokens"/>,
    /// with the penalties counting them and seeded draws continuing at their index.</summary>
    public IReadOnlyList<int> GeneratedTokenIds { get; init; } = Array.Empty<int>();
    /// <summary>With <see cref="GeneratedTokenIds"/>: the text of those tokens that the client already has. It can be
    /// shorter than their whole text (a tail that may start a stop string is held back until the next tokens decide);
    /// the worker primes its stop-string matcher with the whole text and sends only what follows this.</summary>
    public string GeneratedText { get; init; } = "";
    /// <summary>How long the model stays loaded after this query (Ollama's <c>keep_alive</c>): a duration,
    /// <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for ever, zero to unload it after; null: the model's own.
    /// Read by the gateway's router and its node's model pool; it does not travel to workers.</summary>
    public TimeSpan? KeepAlive { get; init; }
    /// <summary>Queries with the same key go to the same worker while one of them is live, if it can take them (the n
    /// sequences of one request share a prompt, which that worker's cache then holds once). Only a preference: a query
    /// goes elsewhere when that worker is full. Read by the gateway's router; it does not travel to workers.</summary>
    public string? AffinityKey { get; init; }
}

public enum RefusalReason { QueueFull, NoModelReady, MemoryPressure, TooLarge, ShuttingDown, InvalidRequest }

/// <summary>What happens to a query, in order: any number of <see cref="TokensGenerated"/>, then exactly one terminal event.</summary>
public abstract record QueryEvent(string QueryId)
{
    public virtual bool IsTerminal => true;
}

/// <summary>New text of a query (complete UTF-8 characters only) and the token ids behind it.</summary>
public sealed record TokensGenerated(string QueryId, string Text, IReadOnlyList<int> TokenIds,
    IReadOnlyList<TokenLogprob>? Logprobs = null) : QueryEvent(QueryId)
{
    public override bool IsTerminal => false;
}

/// <param name="Cached">The answer came whole from the router's answer cache.</param>
/// <param name="CachedPromptTokens">Prompt tokens whose KV cache the engine reused from its prefix cache instead of
/// computing them (OpenAI's <c>usage.prompt_tokens_details.cached_tokens</c>); for an answer from the answer cache,
/// every prompt token, since none was computed.</param>
public sealed record QueryCompleted(string QueryId, FinishReason FinishReason, int PromptTokens, int CompletionTokens,
    bool Cached, string Worker, int CachedPromptTokens = 0) : QueryEvent(QueryId);

public sealed record QueryRefused(string QueryId, RefusalReason Reason, string Message, TimeSpan? RetryAfter) : QueryEvent(QueryId);

public sealed record QueryFailed(string QueryId, string Reason) : QueryEvent(QueryId);

public sealed record QueryTimedOut(string QueryId, TimeSpan Deadline) : QueryEvent(QueryId);

public sealed record QueryCancelled(string QueryId) : QueryEvent(QueryId);

/// <summary>Draining: its node is shutting down; it finishes what it runs and takes nothing new.</summary>
public enum WorkerState { Loading, Ready, Restarting, Failed, Stopped, Draining }

/// <summary>What a worker (a ModelSupervisor and its ModelActor) reports to routers and the watchdog. Built with named
/// properties: only <see cref="Worker"/>, <see cref="Node"/> and <see cref="State"/> are required, the rest default
/// to nothing running, nothing failed.</summary>
public sealed record WorkerStatus
{
    // Who and what.
    public required string Worker { get; init; }
    public required string Node { get; init; }
    public required WorkerState State { get; init; }
    public string? Model { get; init; }
    /// <summary>Where the engine runs ("cpu", "cuda", "mps"), once loaded.</summary>
    public string? Device { get; init; }
    /// <summary>Why the worker is out of service (when <see cref="State"/> is Failed).</summary>
    public string? Error { get; init; }

    // Load: what the router routes by.
    /// <summary>Sequences the engine runs (KV blocks reserved: decoding, prefilling, or preempted to be recomputed).</summary>
    public int Running { get; init; }
    /// <summary>Queries waiting in the engine's queue (or for the engine to load) for KV blocks or a place in the batch.</summary>
    public int Queued { get; init; }
    public int KvFreeTokens { get; init; }
    public int KvCapacityTokens { get; init; }
    /// <summary>Sequences one step advances (the configured batch, less what degrading took).</summary>
    public int MaxBatch { get; init; }
    /// <summary>Weights + KV caches the engine holds.</summary>
    public long TensorBytes { get; init; }
    /// <summary>The engine's memory plan and use (weights, KV pool, activation peak, load overhead), once loaded.</summary>
    public EngineMemory? Memory { get; init; }
    /// <summary>Tokens per KV block: the unit in which the engine admits a query's KV need.</summary>
    public int KvBlockSize { get; init; }
    /// <summary>Why the worker's node takes no new queries (its memory watchdog paused admission); null: it takes them.</summary>
    public string? MemoryPressure { get; init; }

    // Health: the out-of-memory ladder.
    public int Restarts { get; init; }
    public int OomCount { get; init; }
    public DateTimeOffset? LastOom { get; init; }
    /// <summary>Sequences the engine preempted to survive an out-of-memory (rung 1 of the ladder).</summary>
    public int Preemptions { get; init; }
    public bool Degraded { get; init; }
    public string? DegradedReason { get; init; }
    /// <summary>0: as configured; each level halves the KV budget and batch; the CPU fallback is one level too.</summary>
    public int DegradeLevel { get; init; }
    public int Crashes { get; init; }
    public int LoadAttempts { get; init; }
}

public sealed record CacheStats(int Entries, long Bytes, long Hits, long Misses);

/// <summary>What the memory watchdog does: <see cref="Normal"/>; above the cleanup mark it frees what can be freed
/// (<see cref="Cleanup"/>); above the pause mark admission is paused (<see cref="Paused"/>); above the shed mark it also
/// preempts the newest sequences (<see cref="Shedding"/>).</summary>
public enum MemoryState { Normal, Cleanup, Paused, Shedding }

/// <summary>
/// One reading of the node's memory next to its plan (the watchdog publishes one per tick). The plan is the runtime's
/// own memory at start (<see cref="HeldBytes"/>) plus each local worker's weights, load overhead, activation peak and
/// KV pool (a worker still loading counts its whole share of the budget); the marks are fractions of the headroom the
/// plan leaves under the limit, so weights and a full KV pool never trip them.
/// </summary>
public sealed record MemoryStatus : Akka.Actor.INoSerializationVerificationNeeded
{
    // The limit and the budget.
    public required long LimitBytes { get; init; }
    /// <summary>Where the limit comes from: physical memory, the memory cgroup, or --memory-limit.</summary>
    public required string LimitSource { get; init; }
    public double Utilization { get; init; }
    /// <summary>What the workers together may add (limit × utilization, less what the process held at start).</summary>
    public long BudgetBytes { get; init; }
    /// <summary>Resident bytes of the process before any model (runtime, libraries): the runtime overhead. A worker
    /// process counts its parent server's here too, as it does in <see cref="ResidentBytes"/>.</summary>
    public long HeldBytes { get; init; }
    /// <summary>The accelerator's own budget where the workers run on one (CUDA); null on the CPU.</summary>
    public DeviceBudget? Device { get; init; }

    // The plan: the sums of the local workers' host-memory plans (device bytes are in DeviceBytes).
    public long WeightBytes { get; init; }
    public long LoadOverheadBytes { get; init; }
    public long ActivationPeakBytes { get; init; }
    public long KvCacheBytes { get; init; }
    public long KvUsedBytes { get; init; }
    /// <summary><see cref="HeldBytes"/> plus every worker's planned bytes (its share while it loads).</summary>
    public long PlannedBytes { get; init; }

    // Actuals.
    /// <summary>Resident bytes of the process (VmRSS); in a worker process, with its parent server's added (both count
    /// against the node's limit).</summary>
    public required long ResidentBytes { get; init; }
    public long ManagedBytes { get; init; }
    /// <summary>Accelerator memory in use, where the device can tell (CUDA); null on CPU.</summary>
    public long? DeviceBytes { get; init; }
    /// <summary>Resident memory the plan does not name: resident less runtime, weights, load overhead and KV pool
    /// (activations in use, allocator caches, leaks); the activation peak is room planned for part of it.</summary>
    public long UnaccountedBytes => ResidentBytes - HeldBytes - WeightBytes - LoadOverheadBytes - KvCacheBytes;
    /// <summary>What is left under the limit now.</summary>
    public long HeadroomBytes => LimitBytes - ResidentBytes;

    // The watchdog.
    /// <summary>Fractions of the plan's headroom (limit less plan) above the plan where the watchdog cleans up, pauses, sheds.</summary>
    public double CleanupMark { get; init; }
    public double PauseMark { get; init; }
    public double ShedMark { get; init; }
    /// <summary>The marks in resident bytes: plan + mark × (limit − plan).</summary>
    public long CleanupAtBytes { get; init; }
    public long PauseAtBytes { get; init; }
    public long ShedAtBytes { get; init; }
    public MemoryState State { get; init; }
    /// <summary>Why admission is paused (null while it is not).</summary>
    public string? Reason { get; init; }
    public bool Paused => State is MemoryState.Paused or MemoryState.Shedding;
    public long Cleanups { get; init; }
    public long Pauses { get; init; }
    public long Sheds { get; init; }
    /// <summary>How often the watchdog reads now: its interval, or its fast interval above the cleanup mark.</summary>
    public TimeSpan ReadEvery { get; init; }
    public DateTimeOffset At { get; init; }
}

/// <param name="Counters">Totals since start: admitted, completed, cancelled, refused, timedOut, failed, retried, cacheHits, resumed.</param>
public sealed record RouterStatus(
    string Node, bool Paused, bool ShuttingDown, int InFlight, int Queued, int MaxInFlight, int MaxQueue,
    IReadOnlyList<WorkerStatus> Workers, CacheStats Cache, MemoryStatus? Memory,
    RouterCounters? Counters = null, string? PauseReason = null) : Akka.Actor.INoSerializationVerificationNeeded
{
    public bool AnyWorkerReady => Workers.Any(w => w.State == WorkerState.Ready);
}

/// <summary>Totals since the router started.</summary>
/// <param name="Retried">Queries dispatched again after their worker gave them back before any token.</param>
/// <param name="Resumed">Queries continued on another worker from the tokens generated so far, after theirs was lost.</param>
public sealed record RouterCounters(
    long Admitted, long Completed, long Cancelled, long Refused, long TimedOut, long Failed, long Retried, long CacheHits,
    long Resumed = 0);

// ---- Commands to the QueryRouter -------------------------------------------------------------------------
// These stay on their node (HTTP layer, watchdog and router of one node): INoSerializationVerificationNeeded
// keeps them out of akka.actor.serialize-messages checks, which the cluster specs turn on for everything else.

/// <summary>Runs a query; its events (tokens, then exactly one terminal event) go to <paramref name="ReplyTo"/>.</summary>
public sealed record SubmitQuery(QueryRequest Request, Akka.Actor.IActorRef ReplyTo) : Akka.Actor.INoSerializationVerificationNeeded;

/// <summary>The client is gone or gave up: the router answers <see cref="QueryCancelled"/> (if it was still live) and frees the slot.</summary>
public sealed record CancelQuery(string QueryId) : Akka.Actor.INoSerializationVerificationNeeded;

/// <summary>Asks the router for a <see cref="RouterStatus"/>.</summary>
public sealed record GetStatus : Akka.Actor.INoSerializationVerificationNeeded
{
    public static readonly GetStatus Instance = new();
    private GetStatus() { }
}

/// <summary>From the watchdog: stop admitting (new queries get <see cref="RefusalReason.MemoryPressure"/>).</summary>
public sealed record PauseAdmission(string Reason) : Akka.Actor.INoSerializationVerificationNeeded;

/// <summary>From the watchdog: memory is back under the cleanup mark; admit again.</summary>
public sealed record ResumeAdmission : Akka.Actor.INoSerializationVerificationNeeded
{
    public static readonly ResumeAdmission Instance = new();
    private ResumeAdmission() { }
}

/// <summary>
/// Graceful shutdown: refuse new queries with <see cref="RefusalReason.ShuttingDown"/>, let admitted ones finish,
/// and answer <see cref="Drained"/> to the sender once nothing is in flight or queued. Queries still live when
/// the caller gives up can be ended with <see cref="AbortAll"/>.
/// </summary>
public sealed record StartDraining : Akka.Actor.INoSerializationVerificationNeeded
{
    public static readonly StartDraining Instance = new();
    private StartDraining() { }
}

/// <summary>The router has nothing in flight or queued any more.</summary>
public sealed record Drained : Akka.Actor.INoSerializationVerificationNeeded
{
    public static readonly Drained Instance = new();
    private Drained() { }
}

/// <summary>Ends every live query with <see cref="QueryFailed"/> (reason given) and cancels its work; used at the end of a shutdown.</summary>
public sealed record AbortAll(string Reason) : Akka.Actor.INoSerializationVerificationNeeded;

/// <summary>Tells a router (or the watchdog, or the load publisher) about a worker of this node; it subscribes to its status. Workers on other nodes arrive as WorkerLoadPublished.</summary>
public sealed record RegisterWorker(Akka.Actor.IActorRef Worker) : Akka.Actor.INoSerializationVerificationNeeded;
