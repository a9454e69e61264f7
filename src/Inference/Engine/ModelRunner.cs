using ActorQuery.Inference.Model;
using ActorQuery.Inference.Sampling;
using ActorQuery.Tokenization;
using ActorQuery.Tokenization.Grammar;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Engine;

/// <summary>A token the runner sampled for a scheduled chunk.</summary>
public readonly record struct SampledToken(SequenceState Sequence, int TokenId, TokenLogprob? Logprob);

/// <summary>
/// The only part of the engine that touches tensors: it owns the decoder and the KV pool's tensors, runs one
/// forward pass over what the <see cref="Scheduler"/> chose, and samples each sequence that reached its last token
/// with that sequence's <see cref="Sampler"/>.
/// </summary>
public sealed class ModelRunner : IDisposable
{
    private readonly Decoder _decoder;
    private readonly KvBlockPool _pool;
    private readonly Dictionary<long, Sampler> _samplers = new();
    private float[] _logitsRow = [];
    private readonly ITokenizer? _tokenizer;
    private readonly int[] _endTokenIds;
    private readonly GrammarCache _grammars = new();

    internal ModelRunner(Decoder decoder, KvBlockPool pool, ITokenizer? tokenizer = null, IEnumerable<int>? endTokenIds = null)
    {
        _decoder = decoder;
        _pool = pool;
        _tokenizer = tokenizer;
        _endTokenIds = endTokenIds?.ToArray() ?? [];
        WeightBytes = decoder.Weights.ByteSize();
    }

    internal Decoder Decoder => _decoder;
    internal KvBlockPool Pool => _pool;
    /// <summary>Computed once at load: the worker reads the engine's memory after every step.</summary>
    public long WeightBytes { get; }

    /// <summary>Test hook: called with the batch size before each forward pass (throw to simulate a failure).</summary>
    internal Action<int>? BeforeForward { get; set; }

    /// <summary>The dtype of activations and the KV cache, and the dtype the weight matrices are stored in (the two
    /// differ for bfloat16 on a CPU without bf16 instructions: bf16 weights, float32 arithmetic).</summary>
    public (ScalarType Compute, ScalarType Matrices) Dtypes => (_decoder.Weights.Dtype, _decoder.Weights.MatrixDtype);

    /// <summary>For the bench's profile: x·Wᵀ computed exactly as this engine's projections are (kernel or libtorch).</summary>
    public Tensor Project(Tensor x, Tensor weight) => _decoder.Linear(x, weight);

    /// <summary>The sampler a request will use: its constraint compiled (or taken from the cache) and the generated
    /// tokens of a resumed request replayed into it. Throws <see cref="ArgumentException"/> naming "constraint" or
    /// "generated" for a request that cannot run.</summary>
    internal Sampler NewSampler(GenerationRequest request)
    {
        GrammarMatcher? matcher = null;
        if (request.Sampling.Constraint is { } constraint)
        {
            var vocabulary = _tokenizer?.GrammarVocabulary
                ?? throw new ArgumentException("this engine was loaded without a tokenizer vocabulary, so it cannot constrain output", "constraint");
            GrammarAutomaton automaton;
            try { automaton = _grammars.Get(constraint); }
            catch (GrammarException e) { throw new ArgumentException(e.Message, "constraint", e); }
            matcher = new GrammarMatcher(automaton, vocabulary, _endTokenIds.Concat(request.Sampling.StopTokenIds));
        }
        return new Sampler(request.Sampling, request.PromptIds, request.Generated, matcher);
    }

    internal void Add(long sequenceId, Sampler sampler) => _samplers[sequenceId] = sampler;

    /// <summary>A sequence's sampler (tests and tools read its constraint's progress).</summary>
    internal Sampler? SamplerOf(long sequenceId) => _samplers.GetValueOrDefault(sequenceId);

    internal void Forget(long sequenceId) => _samplers.Remove(sequenceId);

    /// <summary>One batched forward pass over <paramref name="batch"/>, then a token for each chunk that samples,
    /// in batch order.</summary>
    internal List<SampledToken> Execute(IReadOnlyList<ScheduledChunk> batch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var items = new List<BatchItem>(batch.Count);
        foreach (var c in batch)
            items.Add(new BatchItem(c.Sequence.Tokens.GetRange(c.Start, c.Count).ToArray(), c.Sequence.Table, c.Samples));
        // A failed forward leaves every table's Length as it was (it advances only at the end), and slots below
        // Length are never written, so the sequences keep their caches and the step can simply be retried.
        BeforeForward?.Invoke(items.Count);
        var logits = _decoder.Forward(_pool, items);
        var sampled = new List<SampledToken>();
        if (logits is null) return sampled;
        // One block copy per row into a buffer the sampler may modify (it is done with it when Sample returns).
        var host = logits.device_type == DeviceType.CPU ? logits.contiguous() : logits.cpu().contiguous();
        int vocab = (int)logits.shape[1], row = 0;
        if (_logitsRow.Length != vocab) _logitsRow = new float[vocab];
        foreach (var c in batch)
        {
            if (!c.Samples) continue;
            TensorData.CopyRow(host, row++, _logitsRow);
            int token = _samplers[c.Sequence.Id].Sample(_logitsRow, out var logprob);
            sampled.Add(new SampledToken(c.Sequence, token, logprob));
        }
        return sampled;
    }

    /// <summary>Logits of every position of <paramref name="ids"/> run as one fresh sequence, [T, vocab].</summary>
    public float[,] ScoreAllPositions(IReadOnlyList<int> ids)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // A private pool just for this call: scoring must not take blocks from (or wait for) served sequences.
        using var pool = new KvBlockPool(_decoder.Weights, 1, Math.Max(1, ids.Count));
        var cache = new KvBlockTable(pool.Allocator);
        pool.Allocator.TryGrow(cache, ids.Count);
        var logits = _decoder.ForwardAllPositions(pool, ids.ToArray(), cache);
        var flat = logits.data<float>().ToArray();
        var result = new float[ids.Count, _decoder.Weights.Config.VocabSize];
        Buffer.BlockCopy(flat, 0, result, 0, flat.Length * sizeof(float));
        return result;
    }

    public void Dispose()
    {
        _samplers.Clear();
        _pool.Dispose();
        _decoder.Dispose();
    }
}
