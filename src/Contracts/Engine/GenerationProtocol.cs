namespace ActorQuery.Contracts;

/// <summary>A sequence to generate for: its id (chosen by the caller, unique per engine), prompt and sampling.</summary>
public sealed record GenerationRequest(long SequenceId, IReadOnlyList<int> PromptIds, SamplingParams Sampling)
{
    /// <summary>Tokens an earlier attempt already generated (a query resumed after its worker was lost): the engine
    /// prefills prompt + these and continues as if it had generated them itself: they count against
    /// <see cref="SamplingParams.MaxNewTokens"/> and <see cref="SamplingParams.MinNewTokens"/>, in the penalties, and
    /// in the index of the next token (so a seeded draw is the one an uninterrupted run makes). Fewer than
    /// MaxNewTokens.</summary>
    public IReadOnlyList<int> Generated { get; init; } = Array.Empty<int>();
}

/// <summary>Why a sequence ended: its token budget (<c>Length</c>) or a stop/EOS token (<c>Stop</c>).</summary>
public enum FinishReason { Length, Stop }

/// <summary>Log-probability of the chosen token, and the most likely alternatives when asked for.</summary>
public sealed record TokenLogprob(int TokenId, float Logprob, IReadOnlyList<TopLogprob> Top);

public readonly record struct TopLogprob(int TokenId, float Logprob);

/// <summary>One new token of one sequence, produced by a <see cref="IGenerationEngine.Step"/>.</summary>
/// <param name="Finished">Set on the sequence's last token; the engine has already freed the sequence.</param>
public sealed record SequenceUpdate(long SequenceId, int TokenId, TokenLogprob? Logprob, FinishReason? Finished)
{
    /// <summary>Tokens of the sequence's prompt whose KV cache the engine took from its prefix cache instead of computing
    /// them (OpenAI's <c>usage.prompt_tokens_details.cached_tokens</c>); 0 without prefix caching.</summary>
    public int CachedPromptTokens { get; init; }
}

/// <summary>What one step did.</summary>
/// <param name="Updates">At most one token per running sequence (prefill chunks produce none).</param>
/// <param name="Preempted">Sequences whose KV cache was dropped (KV pool full, or out of memory); they rejoin and are recomputed.</param>
public sealed record StepResult(IReadOnlyList<SequenceUpdate> Updates, int Preempted)
{
    public static readonly StepResult Idle = new(Array.Empty<SequenceUpdate>(), 0);
}

public enum AddOutcome
{
    /// <summary>The engine holds the sequence: it runs now, or waits its turn for KV blocks.</summary>
    Added,
    /// <summary>The sequence could never fit (prompt + max new tokens over the context or the whole KV pool).</summary>
    TooLarge,
}

/// <param name="TokensFree">The engine's <see cref="IGenerationEngine.KvFreeTokens"/> after the call.</param>
public sealed record AddResult(AddOutcome Outcome, int TokensNeeded, int TokensFree, string? Reason = null)
{
    public bool Added => Outcome == AddOutcome.Added;
}

/// <summary>What a model is, for status pages and the router.</summary>
public sealed record ModelDescription(
    string Name, string Architecture, int ContextLength, int VocabSize,
    IReadOnlyList<int> EosTokenIds, string Dtype, string Device, long ParameterCount);

/// <summary>Bytes the engine holds and planned at load: its weights, its KV pool (committed at load, used or not), the
/// peak of the largest step's activations and scratch (measured at load by running that step once), and what loading
/// added beyond the weights' exact bytes. On a GPU (<see cref="OnDevice"/>) they are device bytes.</summary>
public readonly record struct EngineMemory(long WeightBytes, long KvCacheBytes)
{
    public long TotalBytes => WeightBytes + KvCacheBytes;
    /// <summary>The part of <see cref="KvCacheBytes"/> that live sequences hold (blocks in use × block bytes).</summary>
    public long KvUsedBytes { get; init; }
    /// <summary>Peak bytes of one step of the largest batch the scheduler can form, measured at load; 0: not measured.</summary>
    public long ActivationPeakBytes { get; init; }
    /// <summary>Memory loading took beyond <see cref="WeightBytes"/> (allocator slack, buffers kept), measured at load.</summary>
    public long LoadOverheadBytes { get; init; }
    /// <summary>KV-cache bytes one token takes (keys and values of every layer).</summary>
    public long KvBytesPerToken { get; init; }
    /// <summary>The bytes are the accelerator's (CUDA, MPS), not the host's.</summary>
    public bool OnDevice { get; init; }
    /// <summary>What the plan gives this engine: weights, load overhead, activation peak and the KV pool.</summary>
    public long PlannedBytes => WeightBytes + LoadOverheadBytes + ActivationPeakBytes + KvCacheBytes;
}
