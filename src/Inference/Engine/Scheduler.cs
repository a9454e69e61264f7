using ActorQuery.Inference.Model;

namespace ActorQuery.Inference.Engine;

/// <summary>One sequence as the scheduler tracks it: its request, its tokens so far and its KV blocks.</summary>
public sealed class SequenceState
{
    internal SequenceState(GenerationRequest request, KvBlockTable table)
    {
        Request = request;
        Table = table;
        Tokens = new List<int>(request.PromptIds.Count + request.Sampling.MaxNewTokens);
        Tokens.AddRange(request.PromptIds);
        Tokens.AddRange(request.Generated);   // a resumed sequence: prefilled with the prompt, continued from here
        Generated = request.Generated.Count;
    }

    public GenerationRequest Request { get; }
    public long Id => Request.SequenceId;
    /// <summary>Prompt, then generated tokens (those of an earlier attempt first, when resumed); the block table holds
    /// the first Table.Length of them.</summary>
    public List<int> Tokens { get; }
    public int Generated { get; internal set; }
    public KvBlockTable Table { get; }
    /// <summary>Its blocks are promised (prompt and first new token): it counts against the pool and the step's
    /// sequence limit, and may be prefilled. Until then it waits in arrival order, holding and promising nothing.</summary>
    public bool Reserved { get; internal set; }
    /// <summary>Set when preempted: waits until another sequence leaves before it is recomputed.</summary>
    public bool Parked { get; internal set; }
    /// <summary>Its prompt (and any generated tokens) are cached; each step feeds one new token.</summary>
    public bool IsDecoding => Table.Length > 0 && Tokens.Count - Table.Length == 1;
    /// <summary>Tokens of its prompt whose keys and values came from the prefix cache when it was first prefilled here
    /// (what the API reports as cached prompt tokens); a recompute after preemption does not change it.</summary>
    public int CachedPromptTokens { get; internal set; }

    /// <summary><see cref="PrefixHash"/> of each full block of <see cref="Tokens"/> so far, computed as needed (tokens
    /// never change once known, so neither do these).</summary>
    internal List<UInt128> BlockHashes { get; } = new();
    /// <summary>How many of its table's leading blocks were offered to the prefix cache (or came from it).</summary>
    internal int CachedBlocks { get; set; }
    /// <summary>Its first prefill looked in the prefix cache (and set <see cref="CachedPromptTokens"/>).</summary>
    internal bool LookedUp { get; set; }

    /// <summary>The hashes of its first <paramref name="blocks"/> full blocks.</summary>
    internal List<UInt128> HashesOf(int blocks, int blockSize)
    {
        for (int i = BlockHashes.Count; i < blocks; i++)
            BlockHashes.Add(PrefixHash.Of(i == 0 ? UInt128.Zero : BlockHashes[i - 1],
                System.Runtime.InteropServices.CollectionsMarshal.AsSpan(Tokens).Slice(i * blockSize, blockSize)));
        return BlockHashes;
    }
}

/// <summary>What one sequence feeds in a step: <paramref name="Count"/> of its tokens from position
/// <paramref name="Start"/> (one decode token, or a prefill chunk). <paramref name="Samples"/>: the chunk reaches
/// the last known token, so the step samples the sequence's next one.</summary>
public readonly record struct ScheduledChunk(SequenceState Sequence, int Start, int Count, bool Samples);

/// <summary>
/// The engine's bookkeeping, as vLLM v1's scheduler, and a worker's one queue: which sequences are waiting,
/// running or preempted (parked), their block tables, each step's token budget, whether a new sequence can be
/// reserved, and which sequence to preempt. It holds no tensors: the model runner executes what <see cref="Schedule"/> returns, and <see cref="Update"/>
/// records the token each sequence got.
/// <para>
/// Policy (one <see cref="Schedule"/>):
/// 1. decode first: every running sequence (prompt cached) gets one token, oldest first, up to the step's
///    sequence limit; one whose next token needs a block when none is free preempts the newest sequence holding
///    blocks (itself, if it is the newest);
/// 2. then prefill (new prompts and recomputes), first come first served, in chunks, while the step's token budget
///    lasts and free blocks allow; prefill never preempts, and a sequence that cannot get a block stops the
///    prefill queue (no overtaking);
/// 3. preemption drops the victim's blocks and parks it: it is recomputed from its prompt + generated tokens
///    (same answer) once another sequence leaves, or at once when only parked sequences are left.
/// </para>
/// <para>
/// Prefix caching (when on): every full block a sequence has written is offered to the allocator's prefix cache (at
/// each <see cref="Schedule"/>, and before its blocks are given back). A sequence's first prefill step (and a
/// recompute's) starts from the blocks of the longest cached prefix of its tokens, whole blocks only and never its
/// last token, whose logits the step must compute; it prefills the rest. A sequence whose prompt shares full blocks
/// with an earlier one that is still prefilling them waits (without holding back those behind it) until they are
/// written, so that a prompt sent n times at once (an OpenAI request with n > 1) is prefilled once. Cached tokens' keys
/// and values are the bits the sequence would have computed itself (each token's attention is computed alone, in a fixed
/// order, by the CPU kernels), so its answer does not depend on whether its prefix came from the cache.
/// </para>
/// <para>
/// Adding a sequence (<see cref="TryAdd"/>) accepts every sequence that could ever fit; one whose prompt + max new
/// tokens exceeds the whole pool or the model's context is refused as too large. An added sequence waits, first come
/// first served, until it is reserved: blocks for its prompt and first new token are promised to it, after those
/// promised to the sequences ahead of it, and fewer than the step's sequence limit hold a reservation. The head of
/// the waiting queue holds back those behind it (no overtaking), as in prefill; reservations are made when a
/// sequence is added, when one leaves, and at each <see cref="Schedule"/>.
/// </para>
/// </summary>
public sealed class Scheduler
{
    private readonly KvBlockAllocator _blocks;
    private readonly int _maxBatchSequences, _maxTokensPerStep, _contextLength, _prefillPerDecodeToken;
    private readonly bool _prefixCaching;
    private readonly IReadOnlySet<int> _eos;
    private readonly List<SequenceState> _sequences = new(); // order added = FCFS; the last is the newest

    /// <param name="contextLength">The model's context: no sequence may hold more tokens.</param>
    /// <param name="eosTokenIds">Tokens that end a sequence (unless its sampling ignores EOS).</param>
    /// <param name="prefixCaching">Reuse the KV blocks of cached prompt prefixes (see the class remarks).</param>
    /// <param name="prefillPerDecodeToken">While sequences decode, a step's prefill tokens are at most this many per
    /// decode token (and at least <see cref="MinPrefillChunk"/>); 0: only <paramref name="maxTokensPerStep"/> bounds
    /// them. See <see cref="EngineOptions.PrefillPerDecodeToken"/>.</param>
    public Scheduler(KvBlockAllocator blocks, int maxBatchSequences, int maxTokensPerStep, int contextLength, IEnumerable<int> eosTokenIds,
                     bool prefixCaching = false, int prefillPerDecodeToken = 0)
    {
        if (prefillPerDecodeToken < 0) throw new ArgumentException("must be >= 0", "prefill_per_decode_token");
        if (maxBatchSequences < 1) throw new ArgumentException("must be >= 1", "max_batch_sequences");
        if (maxTokensPerStep < 1) throw new ArgumentException("must be >= 1", "max_tokens_per_step");
        _blocks = blocks;
        _maxBatchSequences = maxBatchSequences;
        _maxTokensPerStep = maxTokensPerStep;
        _contextLength = contextLength;
        _prefixCaching = prefixCaching;
        _prefillPerDecodeToken = prefillPerDecodeToken;
        _eos = new HashSet<int>(eosTokenIds);
    }

    /// <summary>The fewest prefill tokens a step with decoding sequences may carry under the per-decode-token cap. With
    /// 16 prefill tokens a step beside a few streams, 16 streams starting together gave 75 instead of 92 tok/s (engine
    /// bench, 128 + 64 tokens): each step reads all the weights for little work. With 32 they gave the same as with no
    /// cap, and beside 16 streams (the default batch) the cap is 32 either way.</summary>
    public const int MinPrefillChunk = 32;

    public KvBlockAllocator Blocks => _blocks;
    /// <summary>Every sequence added and not finished or removed, oldest first (reserved ones, then those waiting).</summary>
    public IReadOnlyList<SequenceState> Sequences => _sequences;
    /// <summary>Sequences holding a reservation: decoding, prefilling, or preempted to be recomputed.</summary>
    public int RunningCount => _sequences.Count(s => s.Reserved);
    /// <summary>Sequences added and waiting, unreserved, for blocks or for a place in the batch.</summary>
    public int WaitingCount => _sequences.Count - RunningCount;
    public int MaxTokensPerStep => _maxTokensPerStep;
    public bool PrefixCaching => _prefixCaching;
    public long PreemptionsTotal { get; private set; }
    /// <summary>Free blocks, less those reserved for sequences still waiting for (re)prefill, in tokens.</summary>
    public int FreeTokens => Math.Max(0, UnreservedBlocks()) * _blocks.BlockSize;
    /// <summary><see cref="FreeTokens"/> less the whole KV need (<see cref="KvNeed.Tokens(GenerationRequest)"/>) of the
    /// sequences waiting unreserved, never below zero: what is left for a sequence added now, once those ahead of it
    /// are served.</summary>
    public int UnclaimedTokens =>
        Math.Max(0, UnreservedBlocks() * _blocks.BlockSize - _sequences.Where(s => !s.Reserved).Sum(s => KvNeed.Tokens(s.Request)));

    private int UnreservedBlocks() => _blocks.FreeBlocks - ReservedBlocks();

    /// <summary>Adds a sequence to the waiting queue (reserving it at once if it is the head and fits), or says why it
    /// can never run. The request's tokens and sampling must already be valid.</summary>
    public AddResult TryAdd(GenerationRequest request)
    {
        if (_sequences.Any(s => s.Id == request.SequenceId))
            throw new ArgumentException($"sequence {request.SequenceId} is already added", "sequence_id");
        int need = KvNeed.Tokens(request);
        if (need > _contextLength)
            return new AddResult(AddOutcome.TooLarge, need, UnclaimedTokens,
                $"prompt ({request.PromptIds.Count} tokens) + max_new_tokens ({request.Sampling.MaxNewTokens}) exceeds the model's context of {_contextLength} tokens");
        if (_blocks.BlocksFor(need) > _blocks.BlockCount)
            return new AddResult(AddOutcome.TooLarge, need, UnclaimedTokens,
                $"needs {need} tokens of KV cache; the engine's whole pool holds {_blocks.CapacityTokens} ({_blocks.BlockCount} blocks of {_blocks.BlockSize})");
        _sequences.Add(new SequenceState(request, new KvBlockTable(_blocks)));
        ReserveWaiting();
        return new AddResult(AddOutcome.Added, need, UnclaimedTokens);
    }

    /// <summary>Blocks that reserved sequences waiting for (re)prefill still need for their tokens and first new token.</summary>
    private int ReservedBlocks()
    {
        int sum = 0;
        foreach (var s in _sequences)
            if (s.Reserved && !s.IsDecoding) sum += Math.Max(0, _blocks.BlocksFor(s.Tokens.Count + 1) - s.Table.Blocks.Count);
        return sum;
    }

    /// <summary>Reserves waiting sequences in arrival order while blocks and the step's sequence limit allow; the first
    /// that does not fit holds back those behind it. Only the prompt and the first new token are promised: later
    /// blocks come as it decodes (and if the pool runs dry then, the newest sequence is preempted and recomputed).</summary>
    private void ReserveWaiting()
    {
        int reserved = RunningCount, freeBlocks = UnreservedBlocks();
        foreach (var s in _sequences)
        {
            if (s.Reserved) continue;
            int blocks = _blocks.BlocksFor(s.Tokens.Count + 1);
            if (reserved >= _maxBatchSequences || blocks > freeBlocks) return;
            s.Reserved = true;
            reserved++;
            freeBlocks -= blocks;
        }
    }

    /// <summary>Ends a sequence, running or waiting, and frees its blocks. False if unknown.</summary>
    public bool Remove(long sequenceId)
    {
        var s = _sequences.Find(x => x.Id == sequenceId);
        if (s is null) return false;
        Release(s);
        return true;
    }

    /// <summary>Forgets every sequence (the engine is going away with its pool).</summary>
    public void Clear() => _sequences.Clear();

    private void Release(SequenceState s)
    {
        CacheWritten(s);
        _blocks.Release(s.Table);
        _sequences.Remove(s);
        foreach (var p in _sequences) p.Parked = false; // room was made: parked sequences may run again
        ReserveWaiting();                                // and waiting ones may be reserved
    }

    /// <summary>Which sequences run this step and how many of their uncached tokens each feeds; grows their
    /// block tables to hold them. Empty only when no sequence is left.</summary>
    public IReadOnlyList<ScheduledChunk> Schedule()
    {
        if (_sequences.Count == 0) return [];
        foreach (var s in _sequences) CacheWritten(s);      // what the last step wrote
        ReserveWaiting();
        while (true)
        {
            var batch = TrySchedule();
            if (batch.Count > 0) return batch;
            // Nothing could run: no stream is decoding and the oldest waiting prompt (say, a recompute) needs
            // blocks that newer, partly prefilled sequences hold. Take them back, newest first, so the queue moves.
            var head = _sequences.FirstOrDefault(x => x.Reserved && !x.Parked && !x.IsDecoding);
            if (head is null)
            {
                if (!_sequences.Any(x => x.Parked))
                    throw new InvalidOperationException("KV pool accounting is off: no sequence could be reserved in an empty pool");
                foreach (var x in _sequences) x.Parked = false;
                continue;
            }
            var victim = _sequences.LastOrDefault(x => x != head && x.Table.Blocks.Count > 0)
                ?? throw new InvalidOperationException("KV pool accounting is off: nothing holds blocks, yet nothing can run");
            Preempt(victim);
        }
    }

    private List<ScheduledChunk> TrySchedule()
    {
        if (_sequences.All(s => s.Parked || !s.Reserved))
            foreach (var s in _sequences) s.Parked = false;     // only parked ones left: recompute them now
        var batch = new List<ScheduledChunk>();
        int budget = _maxTokensPerStep;
        foreach (var s in _sequences)                           // decode: one token each, oldest first (preempting only parks)
        {
            if (batch.Count == _maxBatchSequences) break;
            if (s.Parked || !s.IsDecoding) continue;
            if (!GrowOrPreempt(s)) continue;                     // s was the newest: it was preempted
            batch.Add(Chunk(s, 1));
            budget--;
        }
        if (_prefillPerDecodeToken > 0 && batch.Count > 0)
            budget = Math.Min(budget, Math.Max(MinPrefillChunk, _prefillPerDecodeToken * batch.Count));
        foreach (var s in _sequences)                           // prefill (and recompute), FCFS, chunked
        {
            if (batch.Count == _maxBatchSequences || (budget <= 0 && batch.Count > 0)) break;
            if (!s.Reserved) break;                              // the rest wait unreserved
            if (s.Parked || s.IsDecoding) continue;
            if (s.Table.Blocks.Count == 0 && _prefixCaching && !TakeCachedPrefix(s)) continue;
            int pending = s.Tokens.Count - s.Table.Length;
            int take = Math.Min(pending, Math.Max(budget, 1));
            // Prefill takes free blocks only (never preempts): shrink the chunk to what they hold.
            take = Math.Min(take, s.Table.Capacity + _blocks.FreeBlocks * _blocks.BlockSize - s.Table.Length);
            if (take <= 0) break;                                // FCFS: no later prompt overtakes this one
            if (!_blocks.TryGrow(s.Table, s.Table.Length + take)) throw new InvalidOperationException("KV pool accounting is off");
            batch.Add(Chunk(s, take));
            budget -= take;
        }
        return batch;
    }

    private static ScheduledChunk Chunk(SequenceState s, int count) =>
        new(s, s.Table.Length, count, s.Table.Length + count == s.Tokens.Count);

    /// <summary>Makes room for a decoding sequence's next token, preempting the newest sequences holding blocks
    /// while the pool is dry. False when <paramref name="s"/> itself was the newest and got preempted.</summary>
    private bool GrowOrPreempt(SequenceState s)
    {
        while (!_blocks.TryGrow(s.Table, s.Table.Length + 1))
        {
            var victim = _sequences.FindLast(x => x.Table.Blocks.Count > 0)!;
            Preempt(victim);
            if (victim == s) return false;
        }
        return true;
    }

    /// <summary>Preempts the newest sequence of <paramref name="batch"/> (a step that ran out of memory is retried
    /// without it).</summary>
    public void PreemptNewest(IReadOnlyList<ScheduledChunk> batch) =>
        Preempt(batch.Select(b => b.Sequence).MaxBy(_sequences.IndexOf)!);

    /// <summary>Memory is short: preempts the newest half of the sequences holding blocks (parked, recomputed once
    /// another leaves). Returns how many.</summary>
    public int Shed()
    {
        var holding = _sequences.Where(s => s.Table.Blocks.Count > 0 && !s.Parked).ToList();
        int n = holding.Count / 2;
        foreach (var s in holding.Skip(holding.Count - n)) Preempt(s);
        return n;
    }

    /// <summary>
    /// Drops a sequence's blocks and parks it; it is rebuilt from its tokens once another sequence leaves,
    /// as vLLM's recompute preemption does (same tokens in, same answer out).
    /// </summary>
    private void Preempt(SequenceState victim)
    {
        CacheWritten(victim);                                   // its recompute (or another sequence) may reuse them
        _blocks.Release(victim.Table);
        victim.CachedBlocks = 0;
        victim.Parked = true;
        PreemptionsTotal++;
    }

    /// <summary>Offers the full blocks <paramref name="s"/> has written since the last call to the prefix cache.</summary>
    private void CacheWritten(SequenceState s)
    {
        if (!_prefixCaching) return;
        int full = s.Table.Length / _blocks.BlockSize;
        if (full <= s.CachedBlocks) return;
        var hashes = s.HashesOf(full, _blocks.BlockSize);
        for (int i = s.CachedBlocks; i < full; i++) _blocks.Cache(s.Table, i, hashes[i]);
        s.CachedBlocks = full;
    }

    /// <summary>
    /// Starts an empty block table from the longest cached prefix of the sequence's tokens: whole blocks, leaving at
    /// least its last token to compute. False (nothing taken) when it should wait instead: an earlier sequence still
    /// prefilling shares more of its full blocks than the cache holds, and will have written them in a step or two.
    /// </summary>
    private bool TakeCachedPrefix(SequenceState s)
    {
        int size = _blocks.BlockSize, cacheable = (s.Tokens.Count - 1) / size;
        var hashes = s.HashesOf(cacheable, size).GetRange(0, cacheable);
        int cached = _blocks.CachedPrefixBlocks(hashes);
        foreach (var o in _sequences)
        {
            if (o == s) break;
            if (!o.Reserved || o.Parked || o.IsDecoding) continue;
            int shared = 0, full = Math.Min(cacheable, o.Tokens.Count / size);
            var theirs = o.HashesOf(full, size);
            while (shared < full && theirs[shared] == hashes[shared]) shared++;
            if (shared > cached && o.Table.Length < shared * size) return false;
        }
        int taken = _blocks.TakeCached(s.Table, hashes);
        s.CachedBlocks = taken;
        if (!s.LookedUp) s.CachedPromptTokens = Math.Min(taken * size, s.Request.PromptIds.Count);
        s.LookedUp = true;
        return true;
    }

    /// <summary>Records the token a sequence got and applies its stop rules: EOS (unless ignored) and its stop
    /// tokens once it has its minimum, its token budget in any case. A finished sequence's blocks are freed.</summary>
    public FinishReason? Update(SequenceState s, int token)
    {
        s.Tokens.Add(token);
        s.Generated++;
        FinishReason? finish = null;
        var p = s.Request.Sampling;
        bool isStop = (!p.IgnoreEos && _eos.Contains(token)) || p.StopTokenIds.Contains(token);
        if (isStop && s.Generated >= p.MinNewTokens) finish = FinishReason.Stop;
        else if (s.Generated >= p.MaxNewTokens) finish = FinishReason.Length;
        if (finish is not null) Release(s);
        return finish;
    }
}
