using ActorQuery.Inference.Engine;

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

public sealed record QueryCompleted(string QueryId, FinishReason FinishReason, int PromptTokens, int CompletionTokens,
    bool Cached, string Worker) : QueryEvent(QueryId);

public sealed record QueryRefused(string QueryId, RefusalReason Reason, string Message, TimeSpan? RetryAfter) : QueryEvent(QueryId);

public sealed record QueryFailed(string QueryId, string Reason) : QueryEvent(QueryId);

public sealed record QueryTimedOut(string QueryId, TimeSpan Deadline) : QueryEvent(QueryId);

public sealed record QueryCancelled(string QueryId) : QueryEvent(QueryId);

public enum WorkerState { Loading, Ready, Restarting, Failed, Stopped }

public sealed record WorkerStatus(
    string Worker, string Node, WorkerState State, string? Model,
    int Running, int Queued, int KvFreeTokens, int KvCapacityTokens,
    int Restarts, int OomCount, DateTimeOffset? LastOom, bool Degraded, string? DegradedReason, string? Error);

public sealed record CacheStats(int Entries, long Bytes, long Hits, long Misses);

public sealed record MemoryStatus(
    long ResidentBytes, long ManagedBytes, long TensorBytes, long? DeviceBytes,
    long LimitBytes, double CleanupMark, double PauseMark,
    long Cleanups, long Pauses, bool Paused, DateTimeOffset At);

public sealed record RouterStatus(
    string Node, bool Paused, bool ShuttingDown, int InFlight, int Queued, int MaxInFlight, int MaxQueue,
    IReadOnlyList<WorkerStatus> Workers, CacheStats Cache, MemoryStatus? Memory)
{
    public bool AnyWorkerReady => Workers.Any(w => w.State == WorkerState.Ready);
}
