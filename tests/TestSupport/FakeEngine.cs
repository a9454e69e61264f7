using System.Collections.Concurrent;
using ActorQuery.Actors.Workers;
using ActorQuery.Contracts;
using ActorQuery.Tokenization;

namespace ActorQuery.TestSupport;

/// <summary>What every engine a <see cref="FakeEngineFactory"/> made has seen, across restarts. Thread-safe.</summary>
public sealed class FakeEngineLog
{
    private int _loads, _steps, _disposes;
    public int Loads => Volatile.Read(ref _loads);
    public int Steps => Volatile.Read(ref _steps);
    public int Disposes => Volatile.Read(ref _disposes);
    public ConcurrentQueue<EngineLoadSettings> LoadSettings { get; } = new();
    public ConcurrentDictionary<int, bool> Threads { get; } = new();
    public ConcurrentQueue<long> Removed { get; } = new();
    /// <summary>First prompt token of every sequence started (cluster specs number their queries with it).</summary>
    public ConcurrentQueue<int> AddedPrompts { get; } = new();
    /// <summary>Every request added, in order (resumed ones carry the tokens already generated).</summary>
    public ConcurrentQueue<GenerationRequest> Requests { get; } = new();
    internal void Loaded(EngineLoadSettings s) { Interlocked.Increment(ref _loads); LoadSettings.Enqueue(s); Threads[Environment.CurrentManagedThreadId] = true; }
    internal void Stepped() { Interlocked.Increment(ref _steps); Threads[Environment.CurrentManagedThreadId] = true; }
    internal void Disposed() => Interlocked.Increment(ref _disposes);
}

/// <summary>
/// A deterministic stand-in for the TorchSharp engine, for actor logic: the next token is a hash of the
/// prompt and the tokens so far (so a "greedy answer" is reproducible and checkable), one token per sequence
/// per step (prefill included, as vLLM's first step). Like the real engine it is the worker's one queue: every
/// sequence that could ever fit is added, and it runs once its whole KV need (in tokens) is free and fewer than
/// <paramref name="maxBatch"/> run; until then it waits, first come first served. A resumed request
/// (<see cref="GenerationRequest.Generated"/>) continues as the uninterrupted one would; asked for logprobs, each token
/// gets <see cref="LogprobOf"/>.
/// </summary>
public sealed class FakeEngine(int kvCapacity, FakeEngineLog log, ISet<int>? preemptAtSteps = null, int maxBatch = int.MaxValue) : IGenerationEngine
{
    private sealed record Seq(long Id, IReadOnlyList<int> Prompt, SamplingParams Sampling, List<int> Generated)
    {
        public int Need => Prompt.Count + Sampling.MaxNewTokens;
    }

    private readonly Dictionary<long, Seq> _seqs = new();     // running: their KV need is taken from _free
    private readonly LinkedList<Seq> _waiting = new();         // arrival order
    private int _free = kvCapacity;
    private readonly int _capacity = kvCapacity;
    private int _step;
    private bool _disposed;

    public static int Next(IReadOnlyList<int> prompt, IReadOnlyList<int> generated)
    {
        int h = 17;
        foreach (var t in prompt) h = (h * 31 + t) % 9973;
        foreach (var t in generated) h = (h * 31 + t) % 9973;
        return 1 + h % 997; // 1..997, never the EOS id 0
    }

    /// <summary>The log-probability the fake engine reports for a token: a function of the token alone, so that specs can check it.</summary>
    public static float LogprobOf(int token) => -(token % 13) / 4f;

    /// <summary>The tokens a fault-free greedy run gives.</summary>
    public static IReadOnlyList<int> GreedyAnswer(IReadOnlyList<int> prompt, int maxNewTokens)
    {
        var g = new List<int>();
        while (g.Count < maxNewTokens) g.Add(Next(prompt, g));
        return g;
    }

    public ModelDescription Model { get; } = new("fake-model", "Fake", 4096, 1000, new[] { 0 }, "float32", "cpu", 1234);
    public int KvCapacityTokens => _capacity;
    public int KvFreeTokens => Math.Max(0, _free - _waiting.Sum(s => s.Need));
    public int RunningSequences => _seqs.Count;
    public int WaitingSequences => _waiting.Count;
    public bool HasPendingWork => _seqs.Count > 0 || _waiting.Count > 0;
    public EngineMemory MemoryUsage => new(1000, _seqs.Values.Sum(s => (long)(s.Prompt.Count + s.Generated.Count) * 8));

    public AddResult TryAdd(GenerationRequest request)
    {
        Check();
        if (request.PromptIds.Count == 0) throw new ArgumentException("must not be empty", "prompt");
        if (_seqs.ContainsKey(request.SequenceId) || _waiting.Any(s => s.Id == request.SequenceId))
            throw new ArgumentException($"sequence {request.SequenceId} is already added", "sequence_id");
        int need = KvNeed.Tokens(request);
        if (need > _capacity) return new AddResult(AddOutcome.TooLarge, need, KvFreeTokens, $"needs {need} tokens, the KV budget holds {_capacity}");
        if (request.Generated.Count >= request.Sampling.MaxNewTokens)
            throw new ArgumentException("leaves no new token", "generated");
        log.Requests.Enqueue(request);
        _waiting.AddLast(new Seq(request.SequenceId, request.PromptIds, request.Sampling, new List<int>(request.Generated)));
        StartWaiting();
        return new AddResult(AddOutcome.Added, need, KvFreeTokens);
    }

    public bool Remove(long sequenceId)
    {
        Check();
        if (_seqs.Remove(sequenceId, out var s)) _free += s.Need;
        else if (_waiting.FirstOrDefault(w => w.Id == sequenceId) is { } w) _waiting.Remove(w);
        else return false;
        log.Removed.Enqueue(sequenceId);
        StartWaiting();
        return true;
    }

    /// <summary>Starts waiting sequences in arrival order while their KV need is free and the batch has room.</summary>
    private void StartWaiting()
    {
        while (_waiting.First is { } node && node.Value.Need <= _free && _seqs.Count < maxBatch)
        {
            var s = node.Value;
            _waiting.RemoveFirst();
            _seqs.Add(s.Id, s);
            _free -= s.Need;
            log.AddedPrompts.Enqueue(s.Prompt[0]);
        }
    }

    public StepResult Step()
    {
        Check();
        log.Stepped();
        _step++;
        if (preemptAtSteps?.Contains(_step) == true) return new StepResult(Array.Empty<SequenceUpdate>(), _seqs.Count);
        var updates = new List<SequenceUpdate>();
        foreach (var s in _seqs.Values.ToList())
        {
            int token = Next(s.Prompt, s.Generated);
            s.Generated.Add(token);
            FinishReason? finish = s.Sampling.StopTokenIds.Contains(token) ? FinishReason.Stop
                : s.Generated.Count >= s.Sampling.MaxNewTokens ? FinishReason.Length : null;
            if (finish is not null) { _seqs.Remove(s.Id); _free += s.Need; }
            var logprob = s.Sampling.Logprobs ? new TokenLogprob(token, LogprobOf(token), Array.Empty<TopLogprob>()) : null;
            updates.Add(new SequenceUpdate(s.Id, token, logprob, finish));
        }
        StartWaiting();
        return new StepResult(updates, 0);
    }

    public void ReleaseIdleMemory() => Check();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        log.Disposed();
    }

    private void Check()
    {
        if (_disposed) throw new ObjectDisposedException(nameof(FakeEngine));
    }
}

/// <summary>Loads <see cref="FakeEngine"/>s; KV capacity scales with the load settings' budget fraction, as the real one's would.</summary>
public sealed class FakeEngineFactory(int kvCapacity = 4096, ITokenizer? tokenizer = null, bool gpu = false,
    Func<EngineLoadSettings, Exception?>? loadFault = null, ISet<int>? preemptAtSteps = null) : IEngineFactory
{
    public FakeEngineLog Log { get; } = new();

    public IGenerationEngine Load(EngineLoadSettings settings)
    {
        if (loadFault?.Invoke(settings) is { } e) throw e;
        Log.Loaded(settings);
        return new FakeEngine((int)(kvCapacity * settings.KvBudgetFraction), Log, preemptAtSteps, settings.MaxBatch);
    }

    public ITokenizer? Tokenizer => tokenizer;
    public bool CanFallBackToCpu => gpu;
}

/// <summary>Token id → one letter ('a' + id % 26): enough text for streaming and stop-string specs.</summary>
public sealed class LetterTokenizer : ITokenizer
{
    public static string TextOf(IEnumerable<int> ids) => string.Concat(ids.Select(i => (char)('a' + i % 26)));
    public int VocabSize => 1000;
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false) => text.Select(c => (int)(c - 'a')).ToArray();
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) => TextOf(ids);
    public IStreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = true) => new Detok();
    public bool HasChatTemplate => false;
    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) => throw new ChatTemplateException("none");
    public IReadOnlyList<int> EndOfTurnTokenIds => new[] { 0 };

    private sealed class Detok : IStreamingDetokenizer
    {
        public string Push(int tokenId) => TextOf(new[] { tokenId });
        public string Flush() => "";
    }
}
