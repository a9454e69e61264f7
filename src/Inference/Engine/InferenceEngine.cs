using ActorQuery.Contracts;
using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Memory;
using ActorQuery.Inference.Model;
using ActorQuery.Inference.Sampling;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Engine;

/// <summary>
/// The TorchSharp engine: immutable <see cref="DecoderWeights"/> plus per-sequence state (block table, sampler),
/// advanced by <see cref="Step"/>: schedule (which sequences run, how many tokens each), execute (one batched
/// forward pass over all of them: decode tokens and prefill chunks share a path), update (sample, stop rules).
/// <para>
/// KV memory is one <see cref="KvBlockPool"/> allocated at load from <see cref="EngineOptions.KvCacheBytes"/>:
/// admitting a sequence, growing it by a block as it decodes, preempting and ending it are bookkeeping on
/// block numbers, so steady-state serving allocates no KV tensors.
/// </para>
/// <para>
/// Scheduler policy (one <see cref="Step"/>):
/// 1. decode first: every running sequence (prompt cached) gets one token, oldest first, up to
///    <see cref="EngineOptions.MaxBatchSequences"/>; one whose next token needs a block when none is free
///    preempts the newest sequence holding blocks (itself, if it is the newest);
/// 2. then prefill (new prompts and recomputes), first come first served, in chunks, while the step's
///    <see cref="EngineOptions.MaxTokensPerStep"/> lasts and free blocks allow; prefill never preempts, and a
///    sequence that cannot get a block stops the prefill queue (no overtaking);
/// 3. preemption drops the victim's blocks and parks it: it is recomputed from its prompt + generated tokens
///    (same answer) once another sequence leaves, or at once when only parked sequences are left.
/// Admission (<see cref="TryAdd"/>) needs blocks for the prompt and its first new token, after the blocks
/// already promised to admitted sequences still waiting for prefill; a sequence whose prompt + max new tokens
/// exceeds the whole pool or the model's context is refused as too large.
/// </para>
/// </summary>
public sealed class InferenceEngine : IGenerationEngine
{
    private sealed class Sequence(GenerationRequest request, Sampler sampler, KvBlockTable table)
    {
        public GenerationRequest Request { get; } = request;
        public Sampler Sampler { get; } = sampler;
        /// <summary>Prompt, then generated tokens; the block table holds the first Table.Length of them.</summary>
        public List<int> Tokens { get; } = new(request.PromptIds);
        public int Generated { get; set; }
        public KvBlockTable Table { get; } = table;
        /// <summary>Set when preempted: waits until another sequence leaves before it is recomputed.</summary>
        public bool Parked { get; set; }
        /// <summary>Its prompt (and any generated tokens) are cached; each step feeds one new token.</summary>
        public bool IsDecoding => Table.Length > 0 && Tokens.Count - Table.Length == 1;
    }

    private readonly Decoder _decoder;
    private readonly KvBlockPool _pool;
    private readonly EngineOptions _options;
    private readonly HashSet<int> _eos;
    private readonly List<Sequence> _sequences = new(); // admission order = FCFS; the last is the newest
    private readonly long _weightBytes;
    private int _preemptedThisStep;
    private float[] _logitsRow = [];
    private bool _disposed;

    public ModelDescription Model { get; }
    public ModelConfig Config { get; }
    public GenerationDefaults? GenerationDefaults { get; }
    public int KvCapacityTokens => _pool.BlockCount * _pool.BlockSize;
    /// <summary>Free blocks, less those promised to admitted sequences still waiting for (re)prefill, in tokens.</summary>
    public int KvFreeTokens => Math.Max(0, _pool.FreeBlocks - PromisedBlocks()) * _pool.BlockSize;
    public int ActiveSequences => _sequences.Count;
    public bool HasPendingWork => _sequences.Count > 0;
    public TimeSpan LoadTime { get; }
    public long PreemptionsTotal { get; private set; }
    /// <summary>The KV pool's shape and use, for tests, the bench and status pages.</summary>
    public int KvBlockSize => _pool.BlockSize;
    public int KvBlocksTotal => _pool.BlockCount;
    public int KvBlocksFree => _pool.FreeBlocks;
    public int MaxTokensPerStep => _options.MaxTokensPerStep;

    /// <summary>Test hook: called with the batch size before each forward pass (throw to simulate a failure).</summary>
    internal Action<int>? BeforeForward { get; set; }

    /// <summary>Weights and the KV pool (allocated at load, whatever is in use); KvUsedBytes is the blocks held
    /// by live sequences. Read by the worker after every step, so the weight size is computed once at load.</summary>
    public EngineMemory MemoryUsage =>
        new(_weightBytes, _pool.ByteSize) { KvUsedBytes = _pool.UsedBlocks * _pool.BlockBytes };

    private InferenceEngine(Decoder decoder, KvBlockPool pool, EngineOptions options, ModelConfig config, GenerationDefaults? defaults, string name, TimeSpan loadTime)
    {
        _decoder = decoder;
        _pool = pool;
        _options = options;
        Config = config;
        GenerationDefaults = defaults;
        LoadTime = loadTime;
        _eos = new HashSet<int>(config.EosTokenIds.Concat(defaults?.EosTokenIds ?? []));
        _weightBytes = decoder.Weights.ByteSize();
        Model = new ModelDescription(name, config.Architecture, config.MaxPositionEmbeddings, config.VocabSize,
            _eos.Order().ToArray(), DeviceAndDtype.Name(decoder.Weights.MatrixDtype), decoder.Weights.Device.ToString(),
            config.ParameterCount());
    }

    /// <summary>Loads the model folder (or random weights of its shape). Errors name the file and tensor.</summary>
    public static InferenceEngine Load(EngineOptions options)
    {
        if (options.KvCacheBytes <= 0) throw new ArgumentException("must be > 0", "kv_cache_bytes");
        if (options.MaxBatchSequences < 1) throw new ArgumentException("must be >= 1", "max_batch_sequences");
        if (options.MaxTokensPerStep < 1) throw new ArgumentException("must be >= 1", "max_tokens_per_step");
        if (options.KvBlockSize is < 1 or > 1024) throw new ArgumentException("must be in [1, 1024]", "kv_block_size");
        if (options.Threads > 0) set_num_threads(options.Threads);
        var sw = Stopwatch.StartNew();
        var folder = Path.GetFullPath(options.ModelPath);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"model folder '{options.ModelPath}' not found");
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        var defaults = GenerationDefaults.Load(folder);
        var device = DeviceAndDtype.ResolveDevice(options.Device);
        // bf16 weight matrices under float32 arithmetic on CPUs without bf16 instructions: see ResolveDtypes.
        var (dtype, matrices) = DeviceAndDtype.ResolveDtypes(options.Dtype, device, config.TorchDtype,
            Decoder.SmallBatchGemmAvailable(ScalarType.Float32, device));
        if (device.type == DeviceType.CUDA)
        {
            CudaMemory.Use(device.index);
            CudnnAttention.ApplyDefault();   // its per-call host cost made bfloat16 decoding 2.7× slower (see there)
        }
        DecoderWeights weights;
        if (options.DummyWeights) weights = DecoderWeights.Random(config, dtype, device, options.DummySeed, matrices);
        else
        {
            using var ckpt = new Checkpoint.Checkpoint(folder);
            weights = DecoderWeights.Load(ckpt, config, dtype, device, matrices);
        }
        KvBlockPool pool;
        try { pool = KvBlockPool.ForBudget(weights, options.KvCacheBytes, options.KvBlockSize); }
        catch { weights.Dispose(); throw; }
        // float32 on an AVX2 CPU: the projections go through the hand-written kernel on its own threads, and
        // libtorch keeps one thread for the rest, so that its OpenMP workers (which spin between ops) do not
        // compete with the kernel's threads for the cores.
        int kernelThreads = 0;
        if (Decoder.SmallBatchGemmAvailable(dtype, device))
        {
            kernelThreads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
            set_num_threads(1);
        }
        return new InferenceEngine(new Decoder(weights, kernelThreads), pool, options, config, defaults, Path.GetFileName(folder.TrimEnd('/')), sw.Elapsed);
    }

    public AddResult TryAdd(GenerationRequest request)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        request.Sampling.Validate();
        if (request.PromptIds.Count == 0) throw new ArgumentException("must hold at least one token", "prompt");
        foreach (var id in request.PromptIds)
            if ((uint)id >= (uint)Config.VocabSize)
                throw new ArgumentException($"token id {id} is outside the vocabulary (0..{Config.VocabSize - 1})", "prompt");
        if (_sequences.Any(s => s.Request.SequenceId == request.SequenceId))
            throw new ArgumentException($"sequence {request.SequenceId} is already running", "sequence_id");

        int need = KvNeed.Tokens(request);
        if (need > Config.MaxPositionEmbeddings)
            return new AddResult(AddOutcome.TooLarge, need, KvFreeTokens,
                $"prompt ({request.PromptIds.Count} tokens) + max_new_tokens ({request.Sampling.MaxNewTokens}) exceeds the model's context of {Config.MaxPositionEmbeddings} tokens");
        if (_pool.BlocksFor(need) > _pool.BlockCount)
            return new AddResult(AddOutcome.TooLarge, need, KvFreeTokens,
                $"needs {need} tokens of KV cache; the engine's whole pool holds {KvCapacityTokens} ({_pool.BlockCount} blocks of {_pool.BlockSize})");
        // Only the prompt and the first new token need blocks now; later blocks come as it decodes (and if the
        // pool runs dry then, the newest sequence is preempted and recomputed, not failed).
        int now = request.PromptIds.Count + 1;
        if (_pool.BlocksFor(now) * _pool.BlockSize > KvFreeTokens)
            return new AddResult(AddOutcome.NoRoomNow, need, KvFreeTokens,
                $"needs {_pool.BlocksFor(now) * _pool.BlockSize} tokens of KV cache to start; {KvFreeTokens} are free");

        _sequences.Add(new Sequence(request, new Sampler(request.Sampling, request.PromptIds), new KvBlockTable(_pool)));
        return new AddResult(AddOutcome.Added, need, KvFreeTokens);
    }

    /// <summary>Blocks that admitted sequences waiting for (re)prefill still need for their tokens and first new token.</summary>
    private int PromisedBlocks()
    {
        int sum = 0;
        foreach (var s in _sequences)
            if (!s.IsDecoding) sum += Math.Max(0, _pool.BlocksFor(s.Tokens.Count + 1) - s.Table.Blocks.Count);
        return sum;
    }

    public bool Remove(long sequenceId)
    {
        var s = _sequences.Find(x => x.Request.SequenceId == sequenceId);
        if (s is null) return false;
        Release(s);
        return true;
    }

    private void Release(Sequence s)
    {
        _pool.Release(s.Table);
        _sequences.Remove(s);
        foreach (var p in _sequences) p.Parked = false; // room was made: parked sequences may run again
    }

    /// <summary>
    /// One step: schedule (see the class comment for the policy), one batched forward pass, update (sample, stop
    /// rules). On an out-of-memory from the allocator the newest sequence of the batch is preempted as when
    /// the pool runs dry, and the step retried.
    /// </summary>
    public StepResult Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_sequences.Count == 0) return StepResult.Idle;
        _preemptedThisStep = 0;
        while (true)
        {
            var batch = Schedule();
            try
            {
                return new StepResult(Execute(batch), _preemptedThisStep);
            }
            catch (Exception e) when (OutOfMemory.IsOutOfMemory(e) && batch.Count > 1)
            {
                Preempt(batch.Select(b => b.Seq).MaxBy(_sequences.IndexOf)!);
                NativeMemory.CollectAndTrim();
            }
        }
    }

    /// <summary>Which sequences run this step and how many of their uncached tokens each feeds; grows their
    /// block tables to hold them.</summary>
    private List<(Sequence Seq, int Count)> Schedule()
    {
        while (true)
        {
            var batch = TrySchedule();
            if (batch.Count > 0) return batch;
            // Nothing could run: no stream is decoding and the oldest waiting prompt (say, a recompute) needs
            // blocks that newer, partly prefilled sequences hold. Take them back, newest first, so the queue moves.
            var head = _sequences.FirstOrDefault(x => !x.Parked && !x.IsDecoding);
            if (head is null) { foreach (var x in _sequences) x.Parked = false; continue; }
            var victim = _sequences.LastOrDefault(x => x != head && x.Table.Blocks.Count > 0)
                ?? throw new InvalidOperationException("KV pool accounting is off: nothing holds blocks, yet nothing can run");
            Preempt(victim);
        }
    }

    private List<(Sequence Seq, int Count)> TrySchedule()
    {
        if (_sequences.All(s => s.Parked))
            foreach (var s in _sequences) s.Parked = false;     // only parked ones left: recompute them now
        var batch = new List<(Sequence, int)>();
        int budget = _options.MaxTokensPerStep;
        foreach (var s in _sequences)                           // decode: one token each, oldest first (preempting only parks)
        {
            if (batch.Count == _options.MaxBatchSequences) break;
            if (s.Parked || !s.IsDecoding) continue;
            if (!GrowOrPreempt(s)) continue;                     // s was the newest: it was preempted
            batch.Add((s, 1));
            budget--;
        }
        foreach (var s in _sequences)                           // prefill (and recompute), FCFS, chunked
        {
            if (batch.Count == _options.MaxBatchSequences || (budget <= 0 && batch.Count > 0)) break;
            if (s.Parked || s.IsDecoding) continue;
            int pending = s.Tokens.Count - s.Table.Length;
            int take = Math.Min(pending, Math.Max(budget, 1));
            // Prefill takes free blocks only (never preempts): shrink the chunk to what they hold.
            take = Math.Min(take, s.Table.Capacity + _pool.FreeBlocks * _pool.BlockSize - s.Table.Length);
            if (take <= 0) break;                                // FCFS: no later prompt overtakes this one
            if (!_pool.TryGrow(s.Table, s.Table.Length + take)) throw new InvalidOperationException("KV pool accounting is off");
            batch.Add((s, take));
            budget -= take;
        }
        return batch;
    }

    /// <summary>Makes room for a decoding sequence's next token, preempting the newest sequences holding blocks
    /// while the pool is dry. False when <paramref name="s"/> itself was the newest and got preempted.</summary>
    private bool GrowOrPreempt(Sequence s)
    {
        while (!_pool.TryGrow(s.Table, s.Table.Length + 1))
        {
            var victim = _sequences.FindLast(x => x.Table.Blocks.Count > 0)!;
            Preempt(victim);
            if (victim == s) return false;
        }
        return true;
    }

    /// <summary>
    /// Drops a sequence's blocks and parks it; it is rebuilt from its tokens once another sequence leaves,
    /// as vLLM's recompute preemption does (same tokens in, same answer out).
    /// </summary>
    private void Preempt(Sequence victim)
    {
        _pool.Release(victim.Table);
        victim.Parked = true;
        PreemptionsTotal++;
        _preemptedThisStep++;
    }

    private List<SequenceUpdate> Execute(List<(Sequence Seq, int Count)> batch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var items = new List<BatchItem>(batch.Count);
        foreach (var (s, count) in batch)
        {
            int start = s.Table.Length;
            items.Add(new BatchItem(s.Tokens.GetRange(start, count).ToArray(), s.Table, start + count == s.Tokens.Count));
        }
        // A failed forward leaves every table's Length as it was (it advances only at the end), and slots below
        // Length are never written, so the sequences keep their caches and the step can simply be retried.
        BeforeForward?.Invoke(items.Count);
        var logits = _decoder.Forward(items);
        var updates = new List<SequenceUpdate>();
        if (logits is null) return updates;
        // One block copy per row into a buffer the sampler may modify (it is done with it when Update returns).
        var host = logits.device_type == DeviceType.CPU ? logits.contiguous() : logits.cpu().contiguous();
        int vocab = (int)logits.shape[1], row = 0;
        if (_logitsRow.Length != vocab) _logitsRow = new float[vocab];
        for (int i = 0; i < batch.Count; i++)
        {
            if (!items[i].WantLogits) continue;
            TensorData.CopyRow(host, row++, _logitsRow);
            updates.Add(Update(batch[i].Seq, _logitsRow));
        }
        return updates;
    }

    private SequenceUpdate Update(Sequence s, float[] logits)
    {
        int token = s.Sampler.Sample(logits, out var logprob);
        s.Tokens.Add(token);
        s.Generated++;
        FinishReason? finish = null;
        var p = s.Request.Sampling;
        bool isStop = (!p.IgnoreEos && _eos.Contains(token)) || p.StopTokenIds.Contains(token);
        if (isStop && s.Generated >= p.MinNewTokens) finish = FinishReason.Stop;
        else if (s.Generated >= p.MaxNewTokens) finish = FinishReason.Length;
        if (finish is not null) Release(s);
        return new SequenceUpdate(s.Request.SequenceId, token, logprob, finish);
    }

    /// <summary>For the bench's profile: x·Wᵀ computed exactly as this engine's projections are (kernel or libtorch).</summary>
    public Tensor Project(Tensor x, Tensor weight) => _decoder.Linear(x, weight);

    /// <summary>The dtype of activations and the KV cache, and the dtype the weight matrices are stored in (the two
    /// differ for bfloat16 on a CPU without bf16 instructions: bf16 weights, float32 arithmetic).</summary>
    public (ScalarType Compute, ScalarType Matrices) Dtypes => (_decoder.Weights.Dtype, _decoder.Weights.MatrixDtype);

    /// <summary>For tests and tools: logits of every position of <paramref name="ids"/> run as one fresh sequence, [T, vocab].</summary>
    public float[,] ScoreAllPositions(IReadOnlyList<int> ids)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // A private pool just for this call: scoring must not take blocks from (or wait for) served sequences.
        using var pool = new KvBlockPool(_decoder.Weights, 1, Math.Max(1, ids.Count));
        var cache = new KvBlockTable(pool);
        pool.TryGrow(cache, ids.Count);
        var logits = _decoder.ForwardAllPositions(ids.ToArray(), cache);
        var flat = logits.data<float>().ToArray();
        var result = new float[ids.Count, Config.VocabSize];
        Buffer.BlockCopy(flat, 0, result, 0, flat.Length * sizeof(float));
        return result;
    }

    public void ReleaseIdleMemory() => NativeMemory.CollectAndTrim();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _sequences.Clear();
        _pool.Dispose();
        _decoder.Dispose();
    }
}
