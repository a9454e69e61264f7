using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Memory;
using ActorQuery.Inference.Model;
using ActorQuery.Inference.Sampling;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Engine;

/// <summary>
/// The TorchSharp engine: immutable <see cref="DecoderWeights"/> plus per-sequence state (KV cache, sampler),
/// advanced by <see cref="Step"/>: schedule (which sequences run, how many tokens each), execute (one batched
/// forward pass over all of them: decode tokens and prefill chunks share a path), update (sample, stop rules).
/// </summary>
public sealed class InferenceEngine : IGenerationEngine
{
    private sealed class Sequence(GenerationRequest request, Sampler sampler, int reserved)
    {
        public GenerationRequest Request { get; } = request;
        public Sampler Sampler { get; } = sampler;
        public int Reserved { get; } = reserved;
        /// <summary>Prompt, then generated tokens; the cache holds the first Cache.Length of them.</summary>
        public List<int> Tokens { get; } = new(request.PromptIds);
        public int Generated { get; set; }
        public KvCache? Cache { get; set; }
        /// <summary>Set when preempted: waits until another sequence leaves before it is recomputed.</summary>
        public bool Parked { get; set; }
    }

    private readonly Decoder _decoder;
    private readonly EngineOptions _options;
    private readonly HashSet<int> _eos;
    private readonly List<Sequence> _sequences = new(); // admission order = FCFS
    private readonly long _bytesPerToken;
    private int _reservedTokens;
    private bool _disposed;

    public ModelDescription Model { get; }
    public ModelConfig Config { get; }
    public GenerationDefaults? GenerationDefaults { get; }
    public int KvCapacityTokens { get; }
    public int KvFreeTokens => KvCapacityTokens - _reservedTokens;
    public int ActiveSequences => _sequences.Count;
    public bool HasPendingWork => _sequences.Count > 0;
    public TimeSpan LoadTime { get; }
    public long PreemptionsTotal { get; private set; }

    /// <summary>Test hook: called with the batch size before each forward pass (throw to simulate a failure).</summary>
    internal Action<int>? BeforeForward { get; set; }

    private readonly long _weightBytes;

    /// <summary>Read by the worker after every step, so the (immutable) weight size is computed once at load.</summary>
    public EngineMemory MemoryUsage =>
        new(_weightBytes, _sequences.Sum(s => s.Cache?.ByteSize ?? 0));

    private InferenceEngine(Decoder decoder, EngineOptions options, ModelConfig config, GenerationDefaults? defaults, string name, TimeSpan loadTime)
    {
        _decoder = decoder;
        _options = options;
        Config = config;
        GenerationDefaults = defaults;
        LoadTime = loadTime;
        _eos = new HashSet<int>(config.EosTokenIds.Concat(defaults?.EosTokenIds ?? []));
        _bytesPerToken = KvCache.BytesPerToken(config, decoder.Weights.Dtype);
        _weightBytes = decoder.Weights.ByteSize();
        KvCapacityTokens = (int)Math.Min(int.MaxValue, options.KvCacheBytes / _bytesPerToken);
        Model = new ModelDescription(name, config.Architecture, config.MaxPositionEmbeddings, config.VocabSize,
            _eos.Order().ToArray(), DeviceAndDtype.Name(decoder.Weights.Dtype), decoder.Weights.Device.ToString(),
            config.ParameterCount());
    }

    /// <summary>Loads the model folder (or random weights of its shape). Errors name the file and tensor.</summary>
    public static InferenceEngine Load(EngineOptions options)
    {
        if (options.KvCacheBytes <= 0) throw new ArgumentException("must be > 0", "kv_cache_bytes");
        if (options.MaxBatchSequences < 1) throw new ArgumentException("must be >= 1", "max_batch_sequences");
        if (options.MaxTokensPerStep < 1) throw new ArgumentException("must be >= 1", "max_tokens_per_step");
        if (options.Threads > 0) set_num_threads(options.Threads);
        var sw = Stopwatch.StartNew();
        var folder = Path.GetFullPath(options.ModelPath);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"model folder '{options.ModelPath}' not found");
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        var defaults = GenerationDefaults.Load(folder);
        var device = DeviceAndDtype.ResolveDevice(options.Device);
        var dtype = DeviceAndDtype.ResolveDtype(options.Dtype, device);
        DecoderWeights weights;
        if (options.DummyWeights) weights = DecoderWeights.Random(config, dtype, device, options.DummySeed);
        else
        {
            using var ckpt = new Checkpoint.Checkpoint(folder);
            weights = DecoderWeights.Load(ckpt, config, dtype, device);
        }
        return new InferenceEngine(new Decoder(weights), options, config, defaults, Path.GetFileName(folder.TrimEnd('/')), sw.Elapsed);
    }

    public AdmitResult TryAdd(GenerationRequest request)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        request.Sampling.Validate();
        if (request.PromptIds.Count == 0) throw new ArgumentException("must hold at least one token", "prompt");
        foreach (var id in request.PromptIds)
            if ((uint)id >= (uint)Config.VocabSize)
                throw new ArgumentException($"token id {id} is outside the vocabulary (0..{Config.VocabSize - 1})", "prompt");
        if (_sequences.Any(s => s.Request.SequenceId == request.SequenceId))
            throw new ArgumentException($"sequence {request.SequenceId} is already running", "sequence_id");

        int need = request.PromptIds.Count + request.Sampling.MaxNewTokens;
        if (need > Config.MaxPositionEmbeddings)
            return new AdmitResult(AdmitOutcome.TooLarge, need, KvFreeTokens,
                $"prompt ({request.PromptIds.Count} tokens) + max_new_tokens ({request.Sampling.MaxNewTokens}) exceeds the model's context of {Config.MaxPositionEmbeddings} tokens");
        if (need > KvCapacityTokens)
            return new AdmitResult(AdmitOutcome.TooLarge, need, KvFreeTokens,
                $"needs {need} tokens of KV cache; the engine's whole budget is {KvCapacityTokens}");
        if (need > KvFreeTokens)
            return new AdmitResult(AdmitOutcome.NoRoomNow, need, KvFreeTokens, $"needs {need} tokens of KV cache; {KvFreeTokens} are free");

        _reservedTokens += need;
        _sequences.Add(new Sequence(request, new Sampler(request.Sampling, request.PromptIds), need));
        return new AdmitResult(AdmitOutcome.Admitted, need, KvFreeTokens);
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
        s.Cache?.Dispose();
        s.Cache = null;
        _sequences.Remove(s);
        _reservedTokens -= s.Reserved;
        foreach (var p in _sequences) p.Parked = false; // room was made: parked sequences may run again
    }

    /// <summary>
    /// One step. Schedule: decode first — every running sequence whose prompt is cached gets one token — then
    /// prefill, first come first served, in chunks, while the step's token budget lasts (so a long prompt
    /// cannot stall the streams already flowing). Execute: one batched forward pass. Update: sample, stop rules.
    /// On out-of-memory the newest sequence's KV cache is dropped (it is recomputed later) and the step retried.
    /// </summary>
    public StepResult Step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_sequences.Count == 0) return StepResult.Idle;
        int preempted = 0;
        while (true)
        {
            var batch = Schedule();
            try
            {
                return new StepResult(Execute(batch), preempted);
            }
            catch (Exception e) when (OutOfMemory.IsOutOfMemory(e) && Preempt(batch))
            {
                preempted++;
            }
        }
    }

    /// <summary>Which sequences run this step, and how many of their uncached tokens each feeds.</summary>
    private List<(Sequence Seq, int Count)> Schedule()
    {
        var candidates = _sequences.Where(s => !s.Parked).ToList();
        if (candidates.Count == 0)
        {
            foreach (var s in _sequences) s.Parked = false; // only parked ones left: recompute them now
            candidates = _sequences.ToList();
        }
        var batch = new List<(Sequence, int)>();
        int budget = _options.MaxTokensPerStep;
        foreach (var s in candidates)                               // decode: one token each
        {
            if (batch.Count == _options.MaxBatchSequences) break;
            if (s.Cache is not null && s.Tokens.Count - s.Cache.Length == 1) { batch.Add((s, 1)); budget--; }
        }
        foreach (var s in candidates)                               // prefill (and recompute), FCFS, chunked
        {
            if (batch.Count == _options.MaxBatchSequences || (budget <= 0 && batch.Count > 0)) break;
            int pending = s.Tokens.Count - (s.Cache?.Length ?? 0);
            if (pending <= 1 && s.Cache is not null) continue;
            int take = Math.Min(pending, Math.Max(budget, 1));
            batch.Add((s, take));
            budget -= take;
        }
        return batch;
    }

    private List<SequenceUpdate> Execute(List<(Sequence Seq, int Count)> batch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var items = new List<BatchItem>(batch.Count);
        foreach (var (s, count) in batch)
        {
            s.Cache ??= new KvCache(_decoder.Weights, s.Reserved); // detached from the scope: lives across steps
            int start = s.Cache.Length;
            items.Add(new BatchItem(s.Tokens.GetRange(start, count).ToArray(), s.Cache, start + count == s.Tokens.Count));
        }
        Tensor? logits;
        try
        {
            BeforeForward?.Invoke(items.Count);
            logits = _decoder.Forward(items);
        }
        catch
        {
            // A failed forward leaves caches half-written: drop them; those sequences are recomputed from their tokens.
            foreach (var (s, _) in batch) { s.Cache?.Dispose(); s.Cache = null; }
            throw;
        }
        var updates = new List<SequenceUpdate>();
        if (logits is null) return updates;
        var all = logits.data<float>().ToArray();
        int vocab = (int)logits.shape[1], row = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            if (!items[i].WantLogits) continue;
            var s = batch[i].Seq;
            var rowLogits = all.AsSpan(row++ * vocab, vocab).ToArray();
            updates.Add(Update(s, rowLogits));
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

    /// <summary>
    /// Rung 1 of the out-of-memory ladder: park the newest sequence of the batch and drop its KV cache (it is
    /// rebuilt from its tokens once another sequence leaves, as vLLM's recompute preemption does). False when
    /// the batch is down to one sequence: then the out-of-memory is the caller's to handle.
    /// </summary>
    private bool Preempt(List<(Sequence Seq, int Count)> batch)
    {
        if (batch.Count <= 1) return false;
        var victim = batch[^1].Seq;
        foreach (var (s, _) in batch) if (_sequences.IndexOf(s) > _sequences.IndexOf(victim)) victim = s;
        victim.Cache?.Dispose();
        victim.Cache = null;
        victim.Parked = true;
        PreemptionsTotal++;
        NativeMemory.CollectAndTrim();
        return true;
    }

    /// <summary>For tests and tools: logits of every position of <paramref name="ids"/> run as one fresh sequence, [T, vocab].</summary>
    public float[,] ScoreAllPositions(IReadOnlyList<int> ids)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var cache = new KvCache(_decoder.Weights, ids.Count);
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
        foreach (var s in _sequences) s.Cache?.Dispose();
        _sequences.Clear();
        _reservedTokens = 0;
        _decoder.Dispose();
    }
}
