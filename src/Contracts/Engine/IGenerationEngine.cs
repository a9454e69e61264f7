namespace ActorQuery.Contracts;

/// <summary>
/// A loaded model that advances many sequences, one <see cref="Step"/> at a time (schedule → one forward
/// pass → update, as vLLM's loop). Not thread-safe: one owner (the ModelActor's pinned thread) calls it.
/// <para>
/// The engine is a worker's one queue: <see cref="TryAdd"/> accepts every sequence that could ever fit, and those
/// that cannot get their KV blocks (or a place in the batch) now wait in it, first come first served, until
/// sequences ahead of them leave. Expected trouble is a result (<see cref="AddResult"/>); an out-of-memory that
/// survives preemption is thrown (see <see cref="Memory.OutOfMemory.IsOutOfMemory"/>).
/// </para>
/// </summary>
public interface IGenerationEngine : IDisposable
{
    ModelDescription Model { get; }

    /// <summary>Tokens the KV cache holds in all (for the paged pool: blocks × block size).</summary>
    int KvCapacityTokens { get; }

    /// <summary>Tokens of KV cache left for a sequence added now (for the paged pool: free blocks, less those reserved
    /// for sequences still waiting for prefill, × block size, less the whole <see cref="KvNeed"/> of the sequences waiting
    /// unreserved; never below zero). Running sequences take more as they decode.</summary>
    int KvFreeTokens { get; }

    /// <summary>Sequences with KV blocks reserved (decoding, prefilling, or preempted to be recomputed); at most the
    /// engine's batch.</summary>
    int RunningSequences { get; }

    /// <summary>Sequences added that wait, with nothing reserved, for KV blocks or a place in the batch.</summary>
    int WaitingSequences { get; }

    bool HasPendingWork { get; }

    EngineMemory MemoryUsage { get; }

    /// <summary>Adds a sequence (to run now or to wait its turn), or refuses it as <see cref="AddOutcome.TooLarge"/>.
    /// Throws <see cref="ArgumentException"/> for invalid input.</summary>
    AddResult TryAdd(GenerationRequest request);

    /// <summary>Ends a sequence early (cancelled, stop string matched), running or waiting, and frees its KV blocks.
    /// False if unknown.</summary>
    bool Remove(long sequenceId);

    /// <summary>Runs one forward pass over the running sequences and returns their new tokens.</summary>
    StepResult Step();

    /// <summary>Drops what can be rebuilt (idle scratch buffers) and returns freed memory to the OS.</summary>
    void ReleaseIdleMemory();

    /// <summary>Tokens per KV block: a sequence's KV need is taken in whole blocks.</summary>
    int KvBlockSize => 1;

    /// <summary>Memory is short: preempts the newest half of the running sequences (they wait and are recomputed, the
    /// same answer) so that the next steps are smaller. Returns how many it preempted.</summary>
    int Shed() => 0;
}
