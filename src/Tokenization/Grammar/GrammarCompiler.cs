using System.Text.Json;

namespace ActorQuery.Tokenization.Grammar;

/// <summary>Compiles an <see cref="OutputConstraint"/> into a <see cref="GrammarAutomaton"/>. Throws
/// <see cref="GrammarException"/> for a constraint that cannot be enforced, naming the keyword or construct.</summary>
public static class GrammarCompiler
{
    /// <summary>Most choices one constraint may list.</summary>
    public const int MaxChoices = 10_000;

    /// <summary>What a <see cref="ConstraintKind.ToolCall"/> output writes before and after the call's JSON.</summary>
    public const string ToolCallOpen = "<tool_call>\n", ToolCallClose = "\n</tool_call>";

    public static GrammarAutomaton Compile(OutputConstraint constraint)
    {
        var automaton = new GrammarAutomaton(Network(constraint));
        if (automaton.Start.IsDead)
            throw new GrammarException("the constraint admits no output (a schema that refers to itself before writing anything, " +
                                       $"or that must nest deeper than {GrammarAutomaton.MaxDepth} levels)");
        return automaton;
    }

    /// <summary>Checks that <paramref name="constraint"/> compiles (the API's 400 before a query is queued).</summary>
    public static void Validate(OutputConstraint constraint) => Compile(constraint);

    private static ByteNfa Network(OutputConstraint c) => c.Kind switch
    {
        ConstraintKind.JsonSchema => JsonSchemaCompiler.Compile(c.Source),
        ConstraintKind.JsonObject => JsonSchemaCompiler.AnyObject(),
        ConstraintKind.Regex => RegexCompiler.Compile(c.Source),
        ConstraintKind.Choices => Choices(c.Source),
        ConstraintKind.ToolCall => JsonSchemaCompiler.Compile(c.Source, ToolCallOpen, ToolCallClose),
        _ => throw new GrammarException($"unknown constraint kind {c.Kind}"),
    };

    private static ByteNfa Choices(string source)
    {
        string[] choices;
        try { choices = JsonSerializer.Deserialize<string[]>(source) ?? []; }
        catch (JsonException e) { throw new GrammarException($"choices must be an array of strings: {e.Message}"); }
        if (choices.Length == 0) throw new GrammarException("choices must hold at least one string");
        if (choices.Length > MaxChoices) throw new GrammarException($"at most {MaxChoices} choices");
        if (choices.Any(x => x is null)) throw new GrammarException("choices must be strings");
        var nfa = new ByteNfa();
        int root = nfa.DeclareRule();
        nfa.DefineRule(root, nfa.Alt(choices.Distinct().Select(x => nfa.Literal(x)).ToList()));
        return nfa;
    }
}

/// <summary>
/// One engine's compiled constraints, most recently used first: a repeated schema reuses its automaton and with it
/// the states and masks already computed. Eight schemas of at most about 30 MB each (see
/// <see cref="GrammarAutomaton.MaxStates"/> and <see cref="GrammarAutomaton.MaxMasks"/>). Not thread-safe (one engine,
/// one thread).
/// </summary>
public sealed class GrammarCache(int capacity = 8)
{
    private readonly LinkedList<(OutputConstraint Key, GrammarAutomaton Automaton)> _lru = new();

    public GrammarAutomaton Get(OutputConstraint constraint)
    {
        for (var node = _lru.First; node is not null; node = node.Next)
            if (node.Value.Key == constraint)
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                return node.Value.Automaton;
            }
        var automaton = GrammarCompiler.Compile(constraint);
        _lru.AddFirst((constraint, automaton));
        while (_lru.Count > capacity) _lru.RemoveLast();
        return automaton;
    }
}
