using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Model;

namespace ActorQuery.Inference.Engine;

/// <summary>
/// The TorchSharp engine, as vLLM v1's: <see cref="ModelLoader"/> loads the weights and allocates the KV pool, the
/// <see cref="Engine.Scheduler"/> keeps the books (which sequences run, how many tokens each, their KV blocks; see
/// there for the policy), and the <see cref="ModelRunner"/> executes. <see cref="Step"/> is schedule → execute one
/// batched forward pass (decode tokens and prefill chunks share a path) and sample → update (stop rules).
/// <para>
/// KV memory is one <see cref="KvBlockPool"/> allocated at load from <see cref="EngineOptions.KvCacheBytes"/>:
/// adding a sequence, growing it by a block as it decodes, preempting and ending it are bookkeeping on block
/// numbers, so steady-state serving allocates no KV tensors.
/// </para>
/// </summary>
public sealed class InferenceEngine : IGenerationEngine
{
    private readonly Scheduler _scheduler;
    private readonly ModelRunner _runner;
    private readonly KvBlockPool _pool;
    private bool _disposed;

    public ModelDescription Model { get; }
    public ModelConfig Config { get; }
    public GenerationDefaults? GenerationDefaults { get; }
    public int KvCapacityTokens => _scheduler.Blocks.CapacityTokens;
    public int KvFreeTokens => _scheduler.UnclaimedTokens;
    public int RunningSequences => _scheduler.RunningCount;
    public int WaitingSequences => _scheduler.WaitingCount;
    public bool HasPendingWork => _scheduler.Sequences.Count > 0;
    public TimeSpan LoadTime { get; }
    public long PreemptionsTotal => _scheduler.PreemptionsTotal;
    /// <summary>The KV pool's shape and use, for tests, the bench and status pages.</summary>
    public int KvBlockSize => _scheduler.Blocks.BlockSize;
    public int KvBlocksTotal => _scheduler.Blocks.BlockCount;
    public int KvBlocksFree => _scheduler.Blocks.FreeBlocks;
    /// <summary>Blocks in the prefix cache (held by sequences or evictable); 0 with prefix caching off.</summary>
    public int KvBlocksCached => _scheduler.Blocks.CachedBlocks;
    public int MaxTokensPerStep => _scheduler.MaxTokensPerStep;

    /// <summary>The bookkeeping half of the engine (sequences, block tables, budgets), for tests and tools to read.</summary>
    public Scheduler Scheduler => _scheduler;
    /// <summary>The tensor half: the decoder and the KV pool (the bench profiles its projections).</summary>
    public ModelRunner Runner => _runner;

    /// <summary>Weights and the KV pool (allocated at load, whatever is in use); KvUsedBytes is the blocks held
    /// by live sequences.</summary>
    public EngineMemory MemoryUsage =>
        new(_runner.WeightBytes, _pool.ByteSize)
        {
            KvUsedBytes = _pool.Allocator.UsedBlocks * _pool.BlockBytes,
            ActivationPeakBytes = _activationPeak, LoadOverheadBytes = _loadOverhead,
            KvBytesPerToken = _pool.BlockBytes / _pool.BlockSize, OnDevice = _onDevice,
        };

    private readonly long _activationPeak, _loadOverhead;
    private readonly bool _onDevice;

    private InferenceEngine(LoadedModel m, EngineOptions options)
    {
        _pool = m.Pool;
        _activationPeak = m.ActivationPeakBytes;
        _loadOverhead = m.LoadOverheadBytes;
        _onDevice = m.Decoder.Weights.Device.type != TorchSharp.DeviceType.CPU;
        var eos = new HashSet<int>(m.Config.EosTokenIds.Concat(m.Defaults?.EosTokenIds ?? []));
        _runner = new ModelRunner(m.Decoder, m.Pool, options.Tokenizer, eos);
        Config = m.Config;
        GenerationDefaults = m.Defaults;
        LoadTime = m.LoadTime;
        _scheduler = new Scheduler(m.Pool.Allocator, options.MaxBatchSequences, options.MaxTokensPerStep, m.Config.MaxPositionEmbeddings, eos,
            options.PrefixCaching, options.PrefillPerDecodeToken);
        var w = m.Decoder.Weights;
        Model = new ModelDescription(m.Name, m.Config.Architecture, m.Config.MaxPositionEmbeddings, m.Config.VocabSize,
            eos.Order().ToArray(), DeviceAndDtype.Name(w.MatrixDtype), w.Device.ToString(), m.Config.ParameterCount());
    }

    /// <summary>Loads the model folder (or random weights of its shape). Errors name the file and tensor.</summary>
    public static InferenceEngine Load(EngineOptions options)
    {
        var loaded = ModelLoader.Load(options);
        try { return new InferenceEngine(loaded, options); }
        catch { loaded.Pool.Dispose(); loaded.Decoder.Dispose(); throw; }
    }

    private void CheckVocabulary(IReadOnlyList<int> ids, string field)
    {
        foreach (var id in ids)
            if ((uint)id >= (uint)Config.VocabSize)
                throw new ArgumentException($"token id {id} is outside the vocabulary (0..{Config.VocabSize - 1})", field);
    }

    public AddResult TryAdd(GenerationRequest request)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        request.Sampling.Validate();
        if (request.PromptIds.Count == 0) throw new ArgumentException("must hold at least one token", "prompt");
        CheckVocabulary(request.PromptIds, "prompt");
        if (request.Generated.Count >= request.Sampling.MaxNewTokens)
            throw new ArgumentException($"{request.Generated.Count} tokens already generated leave none of max_new_tokens ({request.Sampling.MaxNewTokens})", "generated");
        CheckVocabulary(request.Generated, "generated");
        var sampler = _runner.NewSampler(request);                // before the scheduler: a constraint may refuse it
        var result = _scheduler.TryAdd(request);
        if (result.Added) _runner.Add(request.SequenceId, sampler); // its sampler, whether it runs now or waits
        return result;
    }

    public bool Remove(long sequenceId)
    {
        _runner.Forget(sequenceId);
        return _scheduler.Remove(sequenceId);
    }

    /// <summary>
    /// One step: schedule, one batched forward pass and sampling, update (stop rules). On an out-of-memory from
    /// the allocator the newest sequence of the batch is preempted as when the pool runs dry, and the step retried.
    /// </summary>
    public StepResult Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_scheduler.Sequences.Count == 0) return StepResult.Idle;
        long preemptionsBefore = _scheduler.PreemptionsTotal;
        while (true)
        {
            var batch = _scheduler.Schedule();
            List<SampledToken> sampled;
            try
            {
                sampled = _runner.Execute(batch);
            }
            catch (Exception e) when (OutOfMemory.IsOutOfMemory(e) && batch.Count > 1)
            {
                _scheduler.PreemptNewest(batch);
                NativeMemory.CollectAndTrim();
                continue;
            }
            var updates = new List<SequenceUpdate>(sampled.Count);
            foreach (var t in sampled)
            {
                var finish = _scheduler.Update(t.Sequence, t.TokenId);
                if (finish is not null) _runner.Forget(t.Sequence.Id);
                updates.Add(new SequenceUpdate(t.Sequence.Id, t.TokenId, t.Logprob, finish) { CachedPromptTokens = t.Sequence.CachedPromptTokens });
            }
            return new StepResult(updates, (int)(_scheduler.PreemptionsTotal - preemptionsBefore));
        }
    }

    /// <summary>For tests and tools: logits of every position of <paramref name="ids"/> run as one fresh sequence, [T, vocab].</summary>
    public float[,] ScoreAllPositions(IReadOnlyList<int> ids) => _runner.ScoreAllPositions(ids);

    public void ReleaseIdleMemory() => NativeMemory.CollectAndTrim();

    public int Shed() => _scheduler.Shed();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _scheduler.Clear();
        _runner.Dispose();
    }
}
