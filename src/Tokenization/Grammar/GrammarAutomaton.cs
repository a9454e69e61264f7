namespace ActorQuery.Tokenization.Grammar;

/// <summary>
/// A compiled constraint: the byte network (<see cref="ByteNfa"/>) run as a deterministic automaton built lazily.
/// A <see cref="GrammarState"/> is the set of places the network can be after the bytes so far (each a node and a
/// call stack); states are interned, so a state reached twice is the same object, its transitions on each byte are
/// computed once and kept, and so is its token mask. Masks thus cost a trie walk the first time a state is met and
/// a lookup after that. Not thread-safe: one engine (one thread) owns each instance.
/// </summary>
public sealed class GrammarAutomaton
{
    private readonly ByteNfa _nfa;
    private readonly Dictionary<(int Return, int Parent), int> _frameIds = new();
    private readonly List<(int Return, int Parent)> _frames = new();
    private Dictionary<StateKey, GrammarState> _states = new();
    private int _maskCount;

    /// <summary>Deepest call stack a state may hold: bounds nesting, and ends left recursion in a schema.</summary>
    public const int MaxDepth = 128;
    /// <summary>States kept before the table starts afresh (states in use keep working; only sharing is lost). Each
    /// holds its transitions (2 KB), so a schema's table stays under about 20 MB.</summary>
    public const int MaxStates = 10_000;
    /// <summary>Token masks kept per schema (each is vocabulary/8 bytes: 19 KB for 151k tokens, so at most about 10 MB);
    /// past it a state's mask is walked again each time.</summary>
    public const int MaxMasks = 512;

    internal ByteNfa Nfa => _nfa;

    /// <summary>The state before any output.</summary>
    public GrammarState Start { get; }

    /// <summary>States interned so far (a measure for the bench and tests).</summary>
    public int StateCount => _states.Count;

    internal GrammarAutomaton(ByteNfa nfa)
    {
        _nfa = nfa;
        var root = nfa.Rules[0];
        Start = Closure([(root.Start, -1)]);
    }

    internal bool TryReserveMask() => _maskCount < MaxMasks && ++_maskCount > 0;

    /// <summary>The state after reading <paramref name="b"/>, or <see cref="GrammarState.Dead"/>.</summary>
    public GrammarState Step(GrammarState s, byte b)
    {
        var next = s.Next[b];
        if (next is not null) return next;
        // Scratch buffers are reused: a cold mask calls this for every (state, byte) pair the trie walk meets.
        _seeds.Clear();
        var t = s.Threads;
        for (int i = 0; i < t.Length; i += 2)
            foreach (var (lo, hi, to) in _nfa.Nodes[t[i]].Bytes)
                if (b >= lo && b <= hi) _seeds.Add((to, t[i + 1]));
        next = _seeds.Count == 0 ? GrammarState.Dead : Closure(_seeds);
        s.Next[b] = next;
        return next;
    }

    private readonly List<(int Node, int Frame)> _seeds = new();
    private readonly HashSet<(int, int)> _seen = new();
    private readonly Stack<(int Node, int Frame)> _work = new();
    private readonly List<(int, int)> _kept = new();

    private GrammarState Closure(List<(int Node, int Frame)> seeds)
    {
        _seen.Clear();
        _work.Clear();
        _kept.Clear();
        foreach (var x in seeds) _work.Push(x);
        bool canEnd = false;
        while (_work.Count > 0)
        {
            var (n, f) = _work.Pop();
            if (!_seen.Add((n, f))) continue;
            var node = _nfa.Nodes[n];
            if (node.Bytes.Count > 0) _kept.Add((n, f));
            foreach (var e in node.Epsilon) _work.Push((e, f));
            if (node.Call >= 0)
            {
                if (Depth(f) < MaxDepth) _work.Push((_nfa.Rules[node.Call].Start, Frame(node.Return, f)));
            }
            if (node.IsRuleEnd)
            {
                if (f < 0) canEnd = true;
                else _work.Push((_frames[f].Return, _frames[f].Parent));
            }
        }
        if (_kept.Count == 0 && !canEnd) return GrammarState.Dead;
        _kept.Sort();
        var threads = new int[_kept.Count * 2];
        for (int i = 0; i < _kept.Count; i++) (threads[2 * i], threads[2 * i + 1]) = _kept[i];
        var key = new StateKey(threads, canEnd);
        if (_states.TryGetValue(key, out var existing)) return existing;
        if (_states.Count >= MaxStates) { _states = new(); _maskCount = 0; }
        var state = new GrammarState(threads, canEnd);
        _states[key] = state;
        return state;
    }

    private int Frame(int ret, int parent)
    {
        if (_frameIds.TryGetValue((ret, parent), out var id)) return id;
        _frames.Add((ret, parent));
        _frameDepth.Add(Depth(parent) + 1);
        return _frameIds[(ret, parent)] = _frames.Count - 1;
    }

    private int Depth(int f) => f < 0 ? 0 : _frameDepth[f];
    private readonly List<int> _frameDepth = new();

    private readonly struct StateKey(int[] threads, bool canEnd) : IEquatable<StateKey>
    {
        private readonly int[] _t = threads;
        private readonly bool _end = canEnd;
        public bool Equals(StateKey o) => _end == o._end && _t.AsSpan().SequenceEqual(o._t);
        public override bool Equals(object? obj) => obj is StateKey k && Equals(k);
        public override int GetHashCode()
        {
            var h = new HashCode();
            h.Add(_end);
            h.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_t.AsSpan()));
            return h.ToHashCode();
        }
    }
}

/// <summary>Where a constrained output stands: the network's live places after the bytes so far, and whether the
/// output may end here. Interned by its <see cref="GrammarAutomaton"/>.</summary>
public sealed class GrammarState
{
    /// <summary>No continuation of the bytes so far is valid.</summary>
    public static readonly GrammarState Dead = new([], false);

    internal readonly int[] Threads;           // pairs: node, frame id (-1: empty stack)
    internal readonly GrammarState?[] Next;
    internal ulong[]? Mask;

    /// <summary>The output so far is complete: end-of-sequence is allowed.</summary>
    public bool CanEnd { get; }
    /// <summary>Some byte may still follow.</summary>
    public bool CanContinue => Threads.Length > 0;
    public bool IsDead => ReferenceEquals(this, Dead);

    /// <summary>Drops the cached mask (the bench times walks with it).</summary>
    public void ForgetMask() => Mask = null;

    internal GrammarState(int[] threads, bool canEnd)
    {
        Threads = threads;
        CanEnd = canEnd;
        Next = new GrammarState?[256];
        if (threads.Length == 0 && !canEnd) Array.Fill(Next, this);
    }
}
