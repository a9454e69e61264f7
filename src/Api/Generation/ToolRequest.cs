using System.Text.Json;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Tokenization;
using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Api.Generation;

/// <summary>How a request lets the model use its tools (OpenAI's <c>tool_choice</c>).</summary>
internal enum ToolMode { None, Auto, Required }

/// <summary>
/// A chat request's <c>tools</c>, <c>tool_choice</c> and <c>parallel_tool_calls</c>, checked: the tool objects go to the
/// chat template as the client wrote them; <see cref="Constraint"/> holds the output to a call of an allowed function
/// when the client requires one, so that its arguments validate against that function's parameters; the output is read
/// for calls in the model's <see cref="ToolCallFormat"/>, and with <c>parallel_tool_calls: false</c> only its first call
/// is answered.
/// </summary>
internal sealed class ToolRequest
{
    private const int MaxTools = 128;
    private static readonly JsonElement EmptyParameters = JsonDocument.Parse("""{"type": "object", "properties": {}}""").RootElement;

    private ToolRequest(IReadOnlyList<JsonElement> tools, IReadOnlyList<(string Name, JsonElement Parameters)> functions, ToolMode mode, string? named,
        ToolCallFormat format, bool parallelCalls)
    {
        Tools = tools;
        Functions = functions;
        Mode = mode;
        Named = named;
        Format = format;
        ParallelCalls = parallelCalls;
    }

    public ToolCallFormat Format { get; }

    /// <summary>False when the client allows at most one call per answer (<c>parallel_tool_calls: false</c>).</summary>
    public bool ParallelCalls { get; }

    /// <summary>The tool objects, for the chat template.</summary>
    public IReadOnlyList<JsonElement> Tools { get; }
    public IReadOnlyList<(string Name, JsonElement Parameters)> Functions { get; }
    public ToolMode Mode { get; }
    /// <summary>The one function tool_choice names, or null.</summary>
    public string? Named { get; }

    /// <summary>True when the output is read for tool calls.</summary>
    public bool ParsesCalls => Mode != ToolMode.None;

    /// <summary>The whole output's content and calls, in the model's format; one call at most without parallel calls.</summary>
    public (string? Content, List<ToolCallOut> Calls) Parse(string text)
    {
        var (content, calls) = Format == ToolCallFormat.LlamaJson ? LlamaToolCallParser.Parse(text) : ToolCallParser.Parse(text);
        if (!ParallelCalls && calls.Count > 1) calls.RemoveRange(1, calls.Count - 1);
        return (content, calls);
    }

    /// <summary>The streamed form of <see cref="Parse"/>, for one sequence.</summary>
    public IToolCallStreamer Streamer()
    {
        IToolCallStreamer streamer = Format == ToolCallFormat.LlamaJson ? new LlamaToolCallStreamer() : new ToolCallStreamer();
        return ParallelCalls ? streamer : new FirstCallOnly(streamer);
    }

    /// <summary>The constraint that forces one call: of the named function, or of any tool when tool_choice is
    /// "required"; null when the model may answer in text. A tagged call is written between its tags; a Llama call is
    /// the bare object with its arguments under "parameters", as the Llama 3.1+ templates write it.</summary>
    public OutputConstraint? Constraint()
    {
        if (Mode != ToolMode.Required) return null;
        var allowed = Functions.Where(f => Named is null || f.Name == Named).ToList();
        string argumentsKey = Format == ToolCallFormat.LlamaJson ? "parameters" : "arguments";
        var options = allowed.Select(f => new Dictionary<string, object>
        {
            ["type"] = "object",
            ["properties"] = new Dictionary<string, object> { ["name"] = new { @const = f.Name }, [argumentsKey] = f.Parameters },
            ["required"] = new[] { "name", argumentsKey },
            ["additionalProperties"] = false,
        }).ToList();
        object schema = options.Count == 1 ? options[0] : new Dictionary<string, object> { ["anyOf"] = options };
        var kind = Format == ToolCallFormat.LlamaJson ? ConstraintKind.JsonSchema : ConstraintKind.ToolCall;
        var constraint = new OutputConstraint(kind, JsonSerializer.Serialize(schema));
        if (constraint.Source.Length > ConstraintReader.MaxSourceChars)
            throw ApiException.BadRequest("tools", $"the functions' parameters come to more than {ConstraintReader.MaxSourceChars} characters of schema");
        try { GrammarCompiler.Validate(constraint); }
        catch (GrammarException e) { throw ApiException.BadRequest(FieldOf(e, allowed), e.Message); }
        return constraint;
    }

    /// <summary>A schema fault names the tool whose parameters hold it (the JSON pointer starts at anyOf/i).</summary>
    private string FieldOf(GrammarException e, List<(string Name, JsonElement Parameters)> allowed)
    {
        int i = 0;
        if (allowed.Count > 1 && e.Path.StartsWith("/anyOf/", StringComparison.Ordinal))
            int.TryParse(e.Path.Split('/')[2], out i);
        int index = Functions.ToList().FindIndex(f => f.Name == allowed[Math.Min(i, allowed.Count - 1)].Name);
        return $"tools[{index}].function.parameters";
    }

    /// <summary>Null when the request has no tools and no tool_choice other than "none".</summary>
    /// <param name="parallelToolCalls">OpenAI's parallel_tool_calls: absent means true.</param>
    /// <param name="format">How the served model writes calls (its chat template's <see cref="ToolCallFormat"/>).</param>
    public static ToolRequest? Read(List<JsonElement>? tools, JsonElement? toolChoice, bool? parallelToolCalls = null,
        ToolCallFormat format = ToolCallFormat.Tagged)
    {
        bool hasChoice = toolChoice is { ValueKind: not JsonValueKind.Null };
        if (tools is null or { Count: 0 })
        {
            if (hasChoice && !(toolChoice!.Value.ValueKind == JsonValueKind.String && toolChoice.Value.GetString() == "none"))
                throw ApiException.BadRequest("tool_choice", "needs tools");
            return null;
        }
        if (tools.Count > MaxTools) throw ApiException.BadRequest("tools", $"at most {MaxTools} tools");
        var functions = new List<(string, JsonElement)>();
        for (int i = 0; i < tools.Count; i++)
        {
            string at = $"tools[{i}]";
            var t = tools[i];
            if (t.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest(at, "must be an object {\"type\": \"function\", \"function\": {...}}");
            if (!t.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "function")
                throw ApiException.BadRequest($"{at}.type", "must be \"function\"");
            if (!t.TryGetProperty("function", out var f) || f.ValueKind != JsonValueKind.Object)
                throw ApiException.BadRequest($"{at}.function", "must be an object with name, description and parameters");
            if (!f.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String || !IsFunctionName(n.GetString()!))
                throw ApiException.BadRequest($"{at}.function.name", "must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -");
            string name = n.GetString()!;
            if (functions.Any(x => x.Item1 == name)) throw ApiException.BadRequest($"{at}.function.name", $"'{name}' is given twice");
            if (f.TryGetProperty("description", out var d) && d.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
                throw ApiException.BadRequest($"{at}.function.description", "must be a string");
            var parameters = EmptyParameters;
            if (f.TryGetProperty("parameters", out var p) && p.ValueKind != JsonValueKind.Null)
            {
                if (p.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"{at}.function.parameters", "must be a JSON Schema object");
                parameters = p;
            }
            functions.Add((name, parameters));
        }

        var (mode, named) = ReadChoice(toolChoice, functions);
        return new ToolRequest(tools, functions, mode, named, format, parallelToolCalls ?? true);
    }

    private static (ToolMode, string?) ReadChoice(JsonElement? toolChoice, List<(string Name, JsonElement)> functions)
    {
        if (toolChoice is not { ValueKind: not JsonValueKind.Null } c) return (ToolMode.Auto, null);
        if (c.ValueKind == JsonValueKind.String)
            return c.GetString() switch
            {
                "auto" => (ToolMode.Auto, null),
                "none" => (ToolMode.None, null),
                "required" => (ToolMode.Required, null),
                var other => throw ApiException.BadRequest("tool_choice", $"'{other}' is not one of auto, none, required or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"),
            };
        if (c.ValueKind != JsonValueKind.Object
            || !c.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "function"
            || !c.TryGetProperty("function", out var f) || f.ValueKind != JsonValueKind.Object
            || !f.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String)
            throw ApiException.BadRequest("tool_choice", "must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": ...}}");
        string name = n.GetString()!;
        if (!functions.Any(x => x.Name == name))
            throw ApiException.BadRequest("tool_choice", $"names function '{name}', which is not among tools ({string.Join(", ", functions.Select(x => x.Name))})");
        return (ToolMode.Required, name);
    }

    private static bool IsFunctionName(string s) =>
        s.Length is > 0 and <= 64 && s.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '-');
}
