namespace ActorQuery.Tokenization.Grammar;

/// <summary>
/// One sequence's progress through a constraint: masks the logits of tokens that would leave the output no valid
/// continuation, and advances with each token chosen. End-of-sequence tokens are allowed exactly where the output is
/// complete (whatever their bytes), so a constrained output ends only when it is whole, or at its token budget.
/// </summary>
public sealed class GrammarMatcher
{
    private readonly GrammarAutomaton _automaton;
    private readonly TokenVocabulary _vocabulary;
    private readonly int[] _endTokenIds;

    public GrammarMatcher(GrammarAutomaton automaton, TokenVocabulary vocabulary, IEnumerable<int> endTokenIds)
    {
        _automaton = automaton;
        _vocabulary = vocabulary;
        _endTokenIds = endTokenIds.Distinct().ToArray();
        State = automaton.Start;
    }

    public GrammarState State { get; private set; }
    /// <summary>An end-of-sequence token was accepted.</summary>
    public bool Ended { get; private set; }
    public bool IsComplete => State.CanEnd;

    /// <summary>Whether <paramref name="token"/> may come next. After an end token only end tokens may follow (a
    /// sequence that must run on, <c>ignore_eos</c> or <c>min_tokens</c>, adds nothing to the output).</summary>
    public bool Allows(int token)
    {
        bool isEnd = _endTokenIds.Contains(token);
        if (Ended || isEnd) return isEnd && EndAllowed();
        var bytes = _vocabulary.Bytes(token);
        if (bytes is null) return false;
        var s = State;
        foreach (var b in bytes)
        {
            s = _automaton.Step(s, b);
            if (s.IsDead) return false;
        }
        return true;
    }

    /// <summary>Advances past <paramref name="token"/>; false (and no change) when the constraint does not allow it.</summary>
    public bool Accept(int token)
    {
        if (!Allows(token)) return false;
        if (_endTokenIds.Contains(token)) { Ended = true; return true; }
        foreach (var b in _vocabulary.Bytes(token)!) State = _automaton.Step(State, b);
        return true;
    }

    /// <summary>End where the output is complete, after an end token, and where no token can continue the output (a
    /// schema whose only continuations nest past <see cref="GrammarAutomaton.MaxDepth"/>): an invalid end beats a
    /// sequence with nothing to draw.</summary>
    private bool EndAllowed() => Ended || State.CanEnd || IsStuck(AllowedBits());

    private static bool IsStuck(ulong[] bits) => Array.TrueForAll(bits, w => w == 0);

    /// <summary>The allowed tokens of the vocabulary (end tokens not included), one bit per id.</summary>
    public ulong[] AllowedBits() => _vocabulary.Mask(_automaton, State);

    /// <summary>Sets every disallowed token's logit to -∞. <paramref name="logits"/> may be longer than the
    /// vocabulary (padded embedding tables): the ids past it are disallowed.</summary>
    public void MaskLogits(Span<float> logits)
    {
        Span<float> endLogits = stackalloc float[_endTokenIds.Length];
        for (int i = 0; i < _endTokenIds.Length; i++)
            endLogits[i] = (uint)_endTokenIds[i] < (uint)logits.Length ? logits[_endTokenIds[i]] : float.NegativeInfinity;
        var bits = Ended ? new ulong[(_vocabulary.Size + 63) / 64] : AllowedBits();
        bool endAllowed = Ended || State.CanEnd || IsStuck(bits);
        int n = Math.Min(logits.Length, _vocabulary.Size);
        for (int w = 0; w * 64 < n; w++)
        {
            ulong word = bits[w];
            if (word == ulong.MaxValue) continue;
            int lo = w * 64, hi = Math.Min(n, lo + 64);
            if (word == 0) { logits[lo..hi].Fill(float.NegativeInfinity); continue; }
            for (int i = lo; i < hi; i++)
                if ((word & (1UL << (i - lo))) == 0) logits[i] = float.NegativeInfinity;
        }
        if (logits.Length > n) logits[n..].Fill(float.NegativeInfinity);
        for (int i = 0; i < _endTokenIds.Length; i++)
        {
            int id = _endTokenIds[i];
            if ((uint)id < (uint)logits.Length) logits[id] = endAllowed ? endLogits[i] : float.NegativeInfinity;
        }
    }
}
