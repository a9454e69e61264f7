using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Inference.Sampling;

/// <summary>
/// Picks one sequence's next tokens from float32 logits. Holds that sequence's sampler state: its seed, the index of
/// the next token in the completion, and the counts that penalties need.
/// Order as in Hugging Face and vLLM: logit bias → penalties → temperature → top-k → top-p → min-p → draw.
/// Under a constraint (<see cref="GrammarMatcher"/>) the tokens that would break it get -∞ before the draw, so greedy
/// and every sampling setting pick among the allowed tokens only, and the matcher advances with each token chosen.
/// Greedy and plain-temperature draws try the unmasked distribution first and mask only when its token is refused
/// (the same distribution; see <see cref="MayMaskLazily"/>).
/// The draw for the token at index i is a pure function of (seed, i) (<see cref="Uniform"/>), not the i-th number of
/// a stream: a query resumed on another worker from its prompt and the tokens generated so far draws exactly the
/// numbers an uninterrupted run draws, so seeded answers do not depend on where they were cut.
/// Runs on the CPU over a managed copy of the logits: one vocabulary-sized pass per token, small next to
/// the forward pass, and exact and easy to reason about.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingParams _p;
    private readonly ulong _seed;
    private long _index;
    private readonly Dictionary<int, int> _generatedCounts = new();
    private readonly HashSet<int> _seen;
    private readonly GrammarMatcher? _constraint;

    /// <param name="generated">Tokens the completion already holds (a resumed sequence): they count in the penalties
    /// and the next token is drawn for index <c>generated.Count</c>; a constraint replays them.</param>
    /// <param name="constraint">The sequence's constraint, at the start of its output. Throws
    /// <see cref="ArgumentException"/> ("generated") when the generated tokens do not fit it.</param>
    public Sampler(SamplingParams p, IEnumerable<int> promptIds, IReadOnlyList<int>? generated = null, GrammarMatcher? constraint = null)
    {
        _p = p;
        _constraint = constraint;
        // Unseeded: any seed will do, one per sequence.
        _seed = p.Seed is long seed ? unchecked((ulong)seed) : unchecked((ulong)Random.Shared.NextInt64());
        _seen = p.RepetitionPenalty != 1f ? new HashSet<int>(promptIds) : new HashSet<int>();
        if (generated is null) return;
        foreach (var t in generated)
        {
            if (constraint is not null && !constraint.Accept(t))
                throw new ArgumentException($"generated token {t} at index {_index} does not fit the output constraint", "generated");
            Observe(t);
        }
    }

    /// <summary>The constraint's progress, for tests and tools (null: unconstrained).</summary>
    public GrammarMatcher? Constraint => _constraint;

    /// <summary>Index in the completion of the token the next <see cref="Sample"/> picks.</summary>
    public long NextIndex => _index;

    /// <summary>The uniform number in [0, 1) that the draw of the completion's token <paramref name="index"/> uses
    /// under <paramref name="seed"/>: SplitMix64 of both, so each token's draw stands alone.</summary>
    public static double Uniform(ulong seed, long index)
    {
        ulong z = Next(seed ^ Next(unchecked((ulong)index)));
        return (z >> 11) * (1.0 / (1UL << 53));
    }

    /// <summary>One SplitMix64 step from state <paramref name="z"/>: the increment, then the mix.</summary>
    private static ulong Next(ulong z) => SplitMix64.Mix(unchecked(z + SplitMix64.Gamma));

    /// <summary>Counts a chosen token for the penalties.</summary>
    private void Observe(int token)
    {
        _generatedCounts[token] = _generatedCounts.GetValueOrDefault(token) + 1;
        if (_p.RepetitionPenalty != 1f) _seen.Add(token);
        _index++;
    }

    /// <summary>Chooses the next token. <paramref name="logits"/> is modified (penalties, temperature).
    /// Log-probabilities, when asked for, are those of the model's raw distribution (as vLLM reports them).</summary>
    public int Sample(float[] logits, out TokenLogprob? logprob)
    {
        bool wantLogprobs = _p.Logprobs || _p.TopLogprobs > 0;
        double lse = wantLogprobs ? LogSumExp(logits) : 0;
        float[]? raw = wantLogprobs ? (float[])logits.Clone() : null;
        ApplyPenalties(logits);
        int token;
        if (_constraint is null) token = Pick(logits, retry: false);
        else if (MayMaskLazily)
        {
            // Draw first and mask only when the token is not allowed: the retry then draws from the masked
            // distribution, and the two together draw exactly from it (rejection sampling), while a model that
            // already writes valid output, or any token inside a string, costs one automaton step and no mask.
            token = Pick(logits, retry: false);
            if (!_constraint.Allows(token))
            {
                _constraint.MaskLogits(logits);
                token = Pick(logits, retry: true);
            }
        }
        else
        {
            _constraint.MaskLogits(logits);
            token = Pick(logits, retry: false);
        }
        if (_constraint is not null && !_constraint.Accept(token))
            throw new InvalidOperationException($"the sampler chose token {token}, which the constraint had masked");
        logprob = raw is null ? null : new TokenLogprob(token, (float)(raw[token] - lse), TopAlternatives(raw, lse));
        Observe(token);
        return token;
    }

    /// <summary>Drawing before masking is exact only when the draw sees the whole distribution: greedy, or plain
    /// temperature (top-k, top-p and min-p cut it by ranks and mass that the mask would change).</summary>
    private bool MayMaskLazily => _p.Temperature == 0f || (_p.TopK == 0 && _p.TopP >= 1f && _p.MinP == 0f);

    /// <summary>Greedy or a draw; a retry after a refused token draws with its own number for the same index, so a
    /// seeded sequence stays a pure function of (seed, index).</summary>
    private int Pick(float[] logits, bool retry) =>
        _p.Temperature == 0f ? ArgMax(logits) : Draw(logits, retry ? Next(_seed ^ RetryStream) : _seed);

    private const ulong RetryStream = 0x5DEECE66DUL;

    private void ApplyPenalties(float[] logits)
    {
        if (_p.LogitBias is { Count: > 0 } bias)
            foreach (var (t, b) in bias)
                if ((uint)t < (uint)logits.Length) logits[t] += b;
        if (_p.RepetitionPenalty != 1f)
        {
            float r = _p.RepetitionPenalty;
            foreach (var t in _seen)
                if ((uint)t < (uint)logits.Length) logits[t] = logits[t] > 0 ? logits[t] / r : logits[t] * r;
        }
        if (_p.PresencePenalty != 0f || _p.FrequencyPenalty != 0f)
        {
            foreach (var (t, n) in _generatedCounts)
                if ((uint)t < (uint)logits.Length) logits[t] -= _p.PresencePenalty + _p.FrequencyPenalty * n;
        }
    }

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float bestV = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++)
            if (logits[i] > bestV) { bestV = logits[i]; best = i; }
        return best;
    }

    private int Draw(float[] logits, ulong seed)
    {
        float invT = 1f / _p.Temperature;
        int vocab = logits.Length;
        // Candidates in descending logit order: a partial selection when top-k is set, else a full sort
        // (top-p needs the order; only needed when top_p < 1 or min_p > 0).
        int k = _p.TopK > 0 ? Math.Min(_p.TopK, vocab) : vocab;
        int[] idx;
        bool needOrder = k < vocab || _p.TopP < 1f || _p.MinP > 0f;
        if (needOrder)
        {
            idx = new int[vocab];
            for (int i = 0; i < vocab; i++) idx[i] = i;
            var keys = new float[vocab];
            for (int i = 0; i < vocab; i++) keys[i] = -logits[i];
            Array.Sort(keys, idx); // ascending of -logit = descending logit; stable enough: ties by index order of the sort
            if (k < vocab) Array.Resize(ref idx, k);
        }
        else
        {
            idx = new int[vocab];
            for (int i = 0; i < vocab; i++) idx[i] = i;
        }

        float max = float.NegativeInfinity;
        foreach (var i in idx) max = Math.Max(max, logits[i]);
        var probs = new double[idx.Length];
        double sum = 0;
        for (int j = 0; j < idx.Length; j++)
        {
            // A masked token (-∞) is zero without an exp: after a constraint's mask most of the vocabulary is.
            float l = logits[idx[j]];
            probs[j] = float.IsNegativeInfinity(l) ? 0 : Math.Exp((l - max) * invT);
            sum += probs[j];
        }
        int n = idx.Length;
        if (_p.TopP < 1f)
        {
            double cum = 0, limit = _p.TopP * sum;
            for (int j = 0; j < n; j++)
            {
                cum += probs[j];
                if (cum >= limit) { n = j + 1; break; }
            }
        }
        if (_p.MinP > 0f)
        {
            double floor = _p.MinP * probs[0];
            int m = 1;
            while (m < n && probs[m] >= floor) m++;
            n = m;
        }
        double total = 0;
        for (int j = 0; j < n; j++) total += probs[j];
        double u = Uniform(seed, _index) * total;
        // Only candidates of non-zero probability can be drawn: masked tokens (-∞) are zero, and rounding that leaves
        // u above zero at the end falls back to the last one that is not.
        int last = 0;
        for (int j = 0; j < n; j++)
        {
            if (probs[j] == 0) continue;
            last = j;
            u -= probs[j];
            if (u <= 0) return idx[j];
        }
        return idx[last];
    }

    private IReadOnlyList<TopLogprob> TopAlternatives(float[] raw, double lse)
    {
        if (_p.TopLogprobs == 0) return Array.Empty<TopLogprob>();
        // A bounded selection: keep the best N seen so far in a small sorted list.
        var best = new List<int>(_p.TopLogprobs + 1);
        for (int i = 0; i < raw.Length; i++)
        {
            if (best.Count == _p.TopLogprobs && raw[i] <= raw[best[^1]]) continue;
            int pos = best.FindIndex(b => raw[i] > raw[b]);
            best.Insert(pos < 0 ? best.Count : pos, i);
            if (best.Count > _p.TopLogprobs) best.RemoveAt(best.Count - 1);
        }
        return best.Select(i => new TopLogprob(i, (float)(raw[i] - lse))).ToArray();
    }

    private static double LogSumExp(ReadOnlySpan<float> x)
    {
        float max = float.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        double s = 0;
        foreach (var v in x) s += Math.Exp(v - max);
        return max + Math.Log(s);
    }
}
