namespace ActorQuery.Tokenization.Grammar;

/// <summary>What form a constrained output takes.</summary>
public enum ConstraintKind
{
    /// <summary><see cref="OutputConstraint.Source"/> is a JSON Schema (JSON text).</summary>
    JsonSchema,
    /// <summary>Any JSON object (OpenAI's <c>json_object</c>); no source.</summary>
    JsonObject,
    /// <summary><see cref="OutputConstraint.Source"/> is a regular expression the whole output must match.</summary>
    Regex,
    /// <summary><see cref="OutputConstraint.Source"/> is a JSON array of strings: the output is exactly one of them.</summary>
    Choices,
    /// <summary><see cref="OutputConstraint.Source"/> is a JSON Schema for one tool call's JSON, and the output is that
    /// JSON between the tags Qwen2.5 and Hermes-style templates teach: <c>&lt;tool_call&gt;\n{...}\n&lt;/tool_call&gt;</c>.</summary>
    ToolCall,
}

/// <summary>
/// A constraint on a whole output, as data: it travels in requests and across the cluster as its kind and source
/// text, and each engine compiles it (<see cref="GrammarCompiler"/>) against its own vocabulary.
/// </summary>
public sealed record OutputConstraint(ConstraintKind Kind, string Source)
{
    public static OutputConstraint JsonObject { get; } = new(ConstraintKind.JsonObject, "");

    public static OutputConstraint Choices(IEnumerable<string> choices) =>
        new(ConstraintKind.Choices, System.Text.Json.JsonSerializer.Serialize(choices.ToArray()));
}

/// <summary>A constraint the engine cannot compile or enforce: <see cref="Keyword"/> names the schema keyword (or
/// regular-expression construct) at fault, <see cref="Path"/> where it is (a JSON pointer into the schema).</summary>
public sealed class GrammarException(string message, string? keyword = null, string path = "") : Exception(message)
{
    public string? Keyword { get; } = keyword;
    public string Path { get; } = path;
}
