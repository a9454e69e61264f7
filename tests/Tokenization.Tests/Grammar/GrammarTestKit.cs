using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ActorQuery.Tokenization.Grammar;
using Json.Schema;

namespace ActorQuery.Tokenization.Tests.Grammar;

/// <summary>Runs texts through compiled constraints byte by byte, and reads the shared test schemas.</summary>
public static class GrammarTestKit
{
    public static GrammarAutomaton Schema(string json) => GrammarCompiler.Compile(new OutputConstraint(ConstraintKind.JsonSchema, json));
    public static GrammarAutomaton Regex(string pattern) => GrammarCompiler.Compile(new OutputConstraint(ConstraintKind.Regex, pattern));

    /// <summary>The state after <paramref name="text"/>'s bytes (Dead if some byte was refused).</summary>
    public static GrammarState Run(GrammarAutomaton a, string text)
    {
        var s = a.Start;
        foreach (var b in Encoding.UTF8.GetBytes(text)) s = a.Step(s, b);
        return s;
    }

    /// <summary>The whole of <paramref name="text"/> is a complete output.</summary>
    public static bool Accepts(GrammarAutomaton a, string text) => Run(a, text).CanEnd;

    /// <summary><paramref name="text"/> can still be continued into a complete output.</summary>
    public static bool IsPrefix(GrammarAutomaton a, string text) => !Run(a, text).IsDead;

    public static GrammarException Refuses(string schema) =>
        Assert.Throws<GrammarException>(() => Schema(schema));

    private static readonly Lazy<JsonElement> Cases = new(() => JsonDocument.Parse(
        File.ReadAllText(Path.Combine(TokenizerFixtures.Root, "grammar", "schemas.json"))).RootElement);

    public static IReadOnlyList<string> TestSchemas => Cases.Value.GetProperty("schemas").EnumerateArray().Select(x => x.GetRawText()).ToList();
    public static IReadOnlyList<string> TestRegexes => Cases.Value.GetProperty("regexes").EnumerateArray().Select(x => x.GetString()!).ToList();
    public static IReadOnlyList<string[]> TestChoices => Cases.Value.GetProperty("choices").EnumerateArray()
        .Select(x => x.EnumerateArray().Select(y => y.GetString()!).ToArray()).ToList();

    /// <summary>Null when <paramref name="output"/> parses and validates against <paramref name="schema"/>; else why not.</summary>
    public static string? Invalidity(string schema, string output)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(output); }
        catch (JsonException e) { return $"not JSON ({e.Message}): {output}"; }
        var result = JsonSchema.FromText(schema).Evaluate(node, new EvaluationOptions { OutputFormat = OutputFormat.List });
        if (result.IsValid) return null;
        var errors = result.Details.Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}"));
        return $"invalid ({string.Join("; ", errors)}): {output}";
    }
}
