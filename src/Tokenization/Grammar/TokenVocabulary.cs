namespace ActorQuery.Tokenization.Grammar;

/// <summary>
/// A vocabulary's byte strings as a trie, laid out in depth-first order so that a mask is one forward pass over
/// flat arrays: a node the automaton rejects is skipped with its whole subtree (<c>_subtreeEnd</c>), so the walk
/// visits only prefixes that can still be valid. Special tokens (end-of-sequence, chat markers) and ids without bytes
/// are left out: they never spell output, and end-of-sequence is allowed by the matcher, not by the trie.
/// Immutable once built; shared by every engine and thread.
/// </summary>
public sealed class TokenVocabulary
{
    private readonly byte[]?[] _tokenBytes;
    // The trie, depth-first; node 0 is the root (the empty prefix).
    private readonly byte[] _byte;
    private readonly int[] _depth;
    private readonly int[] _subtreeEnd;
    private readonly int[] _token;                       // a token spelled by this node's path, or -1
    private readonly Dictionary<int, int[]> _moreTokens;  // rare: further tokens with the same bytes
    private readonly int _maxDepth;

    /// <summary>Token ids 0..Size-1 (the tokenizer's; a model's embedding table may be larger).</summary>
    public int Size => _tokenBytes.Length;
    /// <summary>Trie nodes (for the bench).</summary>
    public int NodeCount => _byte.Length;

    /// <param name="tokenBytes">Each id's bytes; null or empty: never produced under a constraint.</param>
    public TokenVocabulary(IReadOnlyList<byte[]?> tokenBytes)
    {
        _tokenBytes = tokenBytes.ToArray();
        var ids = Enumerable.Range(0, _tokenBytes.Length).Where(i => _tokenBytes[i] is { Length: > 0 }).ToArray();
        Array.Sort(ids, (a, b) => _tokenBytes[a].AsSpan().SequenceCompareTo(_tokenBytes[b]));
        // Sorted byte strings give the depth-first order directly: each token adds the nodes of its bytes past the
        // prefix it shares with the previous token.
        var bytes = new List<byte> { 0 };
        var depth = new List<int> { 0 };
        var token = new List<int> { -1 };
        var more = new Dictionary<int, List<int>>();
        var path = new List<int> { 0 };                  // node index at each depth along the previous token
        byte[] prev = [];
        foreach (var id in ids)
        {
            var t = _tokenBytes[id]!;
            int common = 0;
            while (common < prev.Length && common < t.Length && prev[common] == t[common]) common++;
            path.RemoveRange(common + 1, path.Count - common - 1);
            for (int d = common; d < t.Length; d++)
            {
                bytes.Add(t[d]);
                depth.Add(d + 1);
                token.Add(-1);
                path.Add(bytes.Count - 1);
            }
            int node = path[t.Length];
            if (token[node] < 0) token[node] = id;
            else (more.TryGetValue(node, out var l) ? l : more[node] = new List<int>()).Add(id);
            prev = t;
        }
        _byte = bytes.ToArray();
        _depth = depth.ToArray();
        _token = token.ToArray();
        _moreTokens = more.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
        _subtreeEnd = new int[_byte.Length];
        // A node's subtree ends at the next node that is no deeper than it.
        var open = new Stack<int>();
        for (int i = 0; i < _byte.Length; i++)
        {
            while (open.Count > 0 && _depth[open.Peek()] >= _depth[i]) _subtreeEnd[open.Pop()] = i;
            open.Push(i);
        }
        while (open.Count > 0) _subtreeEnd[open.Pop()] = _byte.Length;
        _maxDepth = _depth.Length == 0 ? 0 : _depth.Max();
    }

    /// <summary>The bytes token <paramref name="id"/> spells, or null (special, unknown).</summary>
    public byte[]? Bytes(int id) => (uint)id < (uint)_tokenBytes.Length ? _tokenBytes[id] : null;

    /// <summary>The tokens whose bytes keep the output valid from <paramref name="state"/>, one bit per id; kept on the
    /// state, so each state's mask is walked once.</summary>
    public ulong[] Mask(GrammarAutomaton automaton, GrammarState state)
    {
        if (state.Mask is { } cached && cached.Length == (Size + 63) / 64) return cached;
        var bits = new ulong[(Size + 63) / 64];
        if (state.CanContinue)
        {
            var states = new GrammarState[_maxDepth + 1];
            states[0] = state;
            int n = _byte.Length, i = 1;
            while (i < n)
            {
                int d = _depth[i];
                var parent = states[d - 1];
                var next = parent.Next[_byte[i]] ?? automaton.Step(parent, _byte[i]);
                if (next.IsDead) { i = _subtreeEnd[i]; continue; }
                states[d] = next;
                int t = _token[i];
                if (t >= 0)
                {
                    bits[t >> 6] |= 1UL << (t & 63);
                    if (_moreTokens.Count > 0 && _moreTokens.TryGetValue(i, out var more))
                        foreach (var m in more) bits[m >> 6] |= 1UL << (m & 63);
                }
                i++;
            }
        }
        if (automaton.TryReserveMask()) state.Mask = bits;
        return bits;
    }

    /// <summary>The vocabulary of a Hugging Face tokenizer: every non-special token's bytes.</summary>
    public static TokenVocabulary From(HfTokenizer tokenizer)
    {
        var bytes = new byte[]?[tokenizer.VocabSize];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = tokenizer.TokenBytes(i, skipSpecialTokens: true);
        return new TokenVocabulary(bytes);
    }
}
