namespace ActorQuery.Contracts;

/// <summary>
/// A loaded model that advances many sequences, one <see cref="Step"/> at a time (schedule → one forward
/// pass → update, as vLLM's loop). Not thread-safe: one owner (the ModelActor's pinned thread) calls it.
/// Expected trouble is a result (<see cref="AddResult"/>); an out-of-memory that survives preemption is
/// thrown (see <see cref="Memory.OutOfMemory.IsOutOfMemory"/>).
/// </summary>
public interface IGenerationEngine : IDisposable
{
    ModelDescription Model { get; }

    /// <summary>Tokens the KV cache holds in all (for the paged pool: blocks × block size).</summary>
    int KvCapacityTokens { get; }

    /// <summary>Tokens of KV cache free for new sequences (for the paged pool: free blocks, less those reserved for
    /// sequences added and still waiting for prefill, × block size). Running sequences take more as they decode.</summary>
    int KvFreeTokens { get; }

    /// <summary>Sequences added and not yet finished or removed.</summary>
    int ActiveSequences { get; }

    bool HasPendingWork { get; }

    EngineMemory MemoryUsage { get; }

    /// <summary>Adds a sequence, or says why not. Throws <see cref="ArgumentException"/> for invalid input.</summary>
    AddResult TryAdd(GenerationRequest request);

    /// <summary>Ends a sequence early (cancelled, stop string matched) and frees its KV blocks. False if unknown.</summary>
    bool Remove(long sequenceId);

    /// <summary>Runs one forward pass over the active sequences and returns their new tokens.</summary>
    StepResult Step();

    /// <summary>Drops what can be rebuilt (idle scratch buffers) and returns freed memory to the OS.</summary>
    void ReleaseIdleMemory();
}
