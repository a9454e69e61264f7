using ActorQuery.Tokenization.Jinja;

namespace ActorQuery.Tokenization;

/// <summary>
/// A model's chat template (tokenizer_config.json's <c>chat_template</c>), rendered as transformers'
/// <c>apply_chat_template</c> does: Jinja with trim_blocks and lstrip_blocks, the messages as dicts, the special
/// token names as variables, <c>tools</c> and <c>documents</c> set to none.
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>The roles a chat request may use.</summary>
    public static readonly IReadOnlyList<string> Roles = ["system", "user", "assistant"];

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
    }

    /// <summary>Renders the messages; throws <see cref="ChatTemplateException"/> for an invalid message, the template's
    /// own rejection, or (with <see cref="ChatTemplateException.IsTemplateFault"/>) a template past its limits.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        Render(messages, addGenerationPrompt, JinjaLimits.RenderTimeBudget);

    internal string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, TimeSpan timeBudget)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0) throw new ChatTemplateException("messages must not be empty");
        var list = new List<object?>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i] ?? throw new ChatTemplateException($"messages[{i}] is null");
            if (!Roles.Contains(m.Role))
                throw new ChatTemplateException($"messages[{i}].role '{m.Role}' is not supported (use one of: {string.Join(", ", Roles)})");
            if (m.Content is null) throw new ChatTemplateException($"messages[{i}].content is missing");
            list.Add(new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = m.Role, ["content"] = m.Content });
        }

        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = list,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["tools"] = null,
            ["documents"] = null,
        };
        // transformers passes only the special tokens the model has; a missing one stays undefined ("", not "None").
        foreach (var (name, value) in _specialTokens)
            if (value is not null) variables[name] = value;
        return _template.Render(variables, timeBudget);
    }
}
