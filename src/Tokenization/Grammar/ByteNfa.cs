namespace ActorQuery.Tokenization.Grammar;

/// <summary>A piece of automaton with one way in and one way out.</summary>
internal readonly record struct Frag(int Start, int End);

/// <summary>
/// A recursive transition network over bytes: a set of rules, each an NFA whose edges read a byte range, move
/// without reading (epsilon), or call another rule (push a return node, continue at the rule's start; the rule's end
/// node pops). Rule 0 is the whole output. Calls are what let JSON nest without bound and <c>$ref</c> recurse; the
/// compilers build everything else as plain NFA fragments.
/// </summary>
internal sealed class ByteNfa
{
    internal sealed class Node
    {
        public readonly List<(byte Lo, byte Hi, int To)> Bytes = new();
        public readonly List<int> Epsilon = new();
        /// <summary>The rule this node calls (-1: none); the call continues at <see cref="Return"/>.</summary>
        public int Call = -1;
        public int Return = -1;
        /// <summary>This node is the end of a rule: reaching it returns to the caller.</summary>
        public bool IsRuleEnd;
    }

    public readonly List<Node> Nodes = new();
    public readonly List<Frag> Rules = new();

    /// <summary>Most nodes one constraint may compile to: a bound on the work a request can ask for.</summary>
    public const int MaxNodes = 2_000_000;

    public int NewNode()
    {
        if (Nodes.Count >= MaxNodes)
            throw new GrammarException($"the constraint compiles to more than {MaxNodes} automaton states; simplify it (smaller maxLength, maxItems or repetition counts)");
        Nodes.Add(new Node());
        return Nodes.Count - 1;
    }

    /// <summary>Declares a rule whose body is set later by <see cref="DefineRule"/> (so that rules can call
    /// themselves).</summary>
    public int DeclareRule()
    {
        Rules.Add(new Frag(-1, -1));
        return Rules.Count - 1;
    }

    public void DefineRule(int rule, Frag body)
    {
        int end = NewNode();
        Nodes[end].IsRuleEnd = true;
        Eps(body.End, end);
        Rules[rule] = new Frag(body.Start, end);
    }

    public void Eps(int from, int to) => Nodes[from].Epsilon.Add(to);

    public Frag Empty()
    {
        int n = NewNode();
        return new Frag(n, n);
    }

    public Frag Range(byte lo, byte hi)
    {
        int a = NewNode(), b = NewNode();
        Nodes[a].Bytes.Add((lo, hi, b));
        return new Frag(a, b);
    }

    /// <summary>One of several byte ranges.</summary>
    public Frag Ranges(IEnumerable<(byte Lo, byte Hi)> ranges)
    {
        int a = NewNode(), b = NewNode();
        foreach (var (lo, hi) in ranges) Nodes[a].Bytes.Add((lo, hi, b));
        return new Frag(a, b);
    }

    public Frag Literal(ReadOnlySpan<byte> bytes)
    {
        int start = NewNode(), cur = start;
        foreach (var c in bytes)
        {
            int next = NewNode();
            Nodes[cur].Bytes.Add((c, c, next));
            cur = next;
        }
        return new Frag(start, cur);
    }

    public Frag Literal(string text) => Literal(System.Text.Encoding.UTF8.GetBytes(text));

    public Frag Call(int rule)
    {
        int a = NewNode(), b = NewNode();
        Nodes[a].Call = rule;
        Nodes[a].Return = b;
        return new Frag(a, b);
    }

    public Frag Seq(params Frag[] parts) => Seq((IEnumerable<Frag>)parts);

    public Frag Seq(IEnumerable<Frag> parts)
    {
        Frag? acc = null;
        foreach (var p in parts)
        {
            if (acc is { } a) { Eps(a.End, p.Start); acc = new Frag(a.Start, p.End); }
            else acc = p;
        }
        return acc ?? Empty();
    }

    public Frag Alt(IEnumerable<Frag> parts)
    {
        int a = NewNode(), b = NewNode();
        foreach (var p in parts) { Eps(a, p.Start); Eps(p.End, b); }
        return new Frag(a, b);
    }

    public Frag Alt(params Frag[] parts) => Alt((IEnumerable<Frag>)parts);

    /// <summary>Zero or one time, through a fresh start node (the body's start may be the target of a loop inside it).</summary>
    public Frag Optional(Frag f)
    {
        int s = NewNode();
        Eps(s, f.Start);
        Eps(s, f.End);
        return new Frag(s, f.End);
    }

    /// <summary>Zero or more times. The loop goes through fresh nodes so that the body's own start and end keep
    /// their edges to themselves.</summary>
    public Frag Star(Frag f)
    {
        int a = NewNode(), b = NewNode();
        Eps(a, f.Start); Eps(f.End, a); Eps(a, b);
        return new Frag(a, b);
    }

    /// <summary><paramref name="make"/> repeated min..max times (max null: unbounded); each repetition is a fresh copy.</summary>
    public Frag Repeat(Func<Frag> make, int min, int? max)
    {
        var parts = new List<Frag>();
        for (int i = 0; i < min; i++) parts.Add(make());
        if (max is null) parts.Add(Star(make()));
        else
        {
            // Nested optionals, (x(x(x)?)?)?, so that the optional tail has one way through.
            Frag? tail = null;
            for (int i = max.Value - min; i > 0; i--)
            {
                var x = make();
                tail = Optional(tail is { } t ? Seq(x, t) : x);
            }
            if (tail is { } t2) parts.Add(t2);
        }
        return Seq(parts);
    }
}
