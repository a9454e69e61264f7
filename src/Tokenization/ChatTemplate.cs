using System.Text.Json;
using System.Text.RegularExpressions;
using ActorQuery.Tokenization.Jinja;

namespace ActorQuery.Tokenization;

/// <summary>
/// A model's chat template (tokenizer_config.json's <c>chat_template</c>), rendered as transformers'
/// <c>apply_chat_template</c> does: Jinja with trim_blocks and lstrip_blocks, the messages as dicts, the special
/// token names as variables, <c>tools</c> as the list of tool objects (or none) and <c>documents</c> set to none.
/// Assistant tool calls reach the template as <c>{"id", "type": "function", "function": {"name", "arguments"}}</c> with
/// the arguments as an object, a tool result as <c>{"role": "tool", "tool_call_id", "content"}</c>, as transformers
/// documents them.
/// </summary>
public sealed partial class ChatTemplate
{
    /// <summary>The roles a chat request may use.</summary>
    public static readonly IReadOnlyList<string> Roles = ["system", "user", "assistant", "tool"];

    private readonly JinjaTemplate _template;
    private readonly IReadOnlyDictionary<string, string?> _specialTokens;

    /// <summary>Parses the template; throws <see cref="ChatTemplateException"/> naming the line of a syntax error.</summary>
    /// <param name="source">The Jinja source.</param>
    /// <param name="specialTokens">bos_token, eos_token, ... as the template may use them.</param>
    public ChatTemplate(string source, IReadOnlyDictionary<string, string?> specialTokens)
    {
        ArgumentNullException.ThrowIfNull(source);
        _template = new JinjaTemplate(source);
        _specialTokens = specialTokens;
        SupportsTools = ReferencesTools(source);
        ToolCallFormat = FormatOf(source);
    }

    /// <summary>How the template writes an assistant's tool calls, and so how the model will write them: a template
    /// that writes <c>&lt;tool_call&gt;</c> (Qwen2.5, Hermes) is <see cref="Tokenization.ToolCallFormat.Tagged"/>; one
    /// that writes calls as JSON with a <c>"parameters"</c> key and no such tag (Llama 3.1, 3.2, 3.3) is
    /// <see cref="Tokenization.ToolCallFormat.LlamaJson"/>; any other template is taken as tagged.</summary>
    public ToolCallFormat ToolCallFormat { get; }

    private static ToolCallFormat FormatOf(string source) =>
        !source.Contains("<tool_call>", StringComparison.Ordinal) && source.Contains("\"parameters\"", StringComparison.Ordinal)
            ? ToolCallFormat.LlamaJson
            : ToolCallFormat.Tagged;

    /// <summary>True when the template's code (not its text) reads the <c>tools</c> variable: a template that never
    /// does would drop the tool definitions silently.</summary>
    public bool SupportsTools { get; }

    private static bool ReferencesTools(string source) =>
        JinjaCode().Matches(source).Any(m => ToolsName().IsMatch(QuotedString().Replace(m.Value, "")));

    [GeneratedRegex(@"\{[{%].*?[%}]\}", RegexOptions.Singleline)]
    private static partial Regex JinjaCode();

    [GeneratedRegex(@"""(?:[^""\\]|\\.)*""|'(?:[^'\\]|\\.)*'", RegexOptions.Singleline)]
    private static partial Regex QuotedString();

    [GeneratedRegex(@"(?<![\w.])tools\b")]
    private static partial Regex ToolsName();

    /// <summary>Renders the messages; throws <see cref="ChatTemplateException"/> for an invalid message, the template's
    /// own rejection, or (with <see cref="ChatTemplateException.IsTemplateFault"/>) a template past its limits.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        Render(messages, addGenerationPrompt, null, JinjaLimits.RenderTimeBudget);

    /// <summary>Renders the messages with tool definitions: each of <paramref name="tools"/> is one
    /// <c>{"type": "function", "function": {...}}</c> object, passed to the template as is.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<JsonElement>? tools) =>
        Render(messages, addGenerationPrompt, tools, JinjaLimits.RenderTimeBudget);

    internal string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, TimeSpan timeBudget) =>
        Render(messages, addGenerationPrompt, null, timeBudget);

    internal string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<JsonElement>? tools, TimeSpan timeBudget)
    {
        if (tools is { Count: > 0 } && !SupportsTools)
            throw new ChatTemplateException("this model's chat template does not support tools (it never reads the tools variable)");
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0) throw new ChatTemplateException("messages must not be empty");
        var list = new List<object?>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i] ?? throw new ChatTemplateException($"messages[{i}] is null");
            if (!Roles.Contains(m.Role))
                throw new ChatTemplateException($"messages[{i}].role '{m.Role}' is not supported (use one of: {string.Join(", ", Roles)})");
            if (m.Content is null) throw new ChatTemplateException($"messages[{i}].content is missing");
            list.Add(MessageValue(m));
        }

        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = list,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["tools"] = tools is { Count: > 0 } ? tools.Select(JinjaValues.FromJson).ToList() : null,
            ["documents"] = null,
        };
        // transformers passes only the special tokens the model has; a missing one stays undefined ("", not "None").
        foreach (var (name, value) in _specialTokens)
            if (value is not null) variables[name] = value;
        return _template.Render(variables, timeBudget);
    }

    private static Dictionary<string, object?> MessageValue(ChatMessage m)
    {
        var value = new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = m.Role, ["content"] = m.Content };
        if (m.ToolCalls is { Count: > 0 } calls)
            value["tool_calls"] = calls.Select(c => (object?)new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["id"] = c.Id,
                ["type"] = "function",
                ["function"] = new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["name"] = c.Name,
                    ["arguments"] = JinjaValues.FromJson(c.Arguments),
                },
            }).ToList();
        if (m.ToolCallId is not null) value["tool_call_id"] = m.ToolCallId;
        if (m.Name is not null) value["name"] = m.Name;
        return value;
    }
}
