using System.Text;
using System.Text.Json;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Contracts;
using ActorQuery.Tokenization;

namespace ActorQuery.Api.Generation;

/// <summary>
/// Turns a request's fields into a <see cref="GenerationJob"/>: parses the polymorphic fields (stop, prompt,
/// message content), validates sampling (naming the field the client sent), tokenises, and checks that prompt
/// plus new tokens fit the model's context.
/// </summary>
internal static class PromptBuilder
{
    private static readonly HashSet<string> Roles = new(StringComparer.Ordinal) { "system", "user", "assistant", "developer", "tool" };

    /// <summary>The messages, at most <see cref="ApiOptions.MaxMessages"/> of them and <see cref="ApiOptions.MaxPromptChars"/>
    /// characters of content in all, checked before the chat template and the tokenizer run.</summary>
    public static IReadOnlyList<ChatMessage> ParseMessages(List<ChatMessageDto>? messages, ApiOptions options)
    {
        if (messages is null) throw ApiException.BadRequest("messages", "is required");
        if (messages.Count == 0) throw ApiException.BadRequest("messages", "must hold at least one message");
        if (messages.Count > options.MaxMessages)
            throw ApiException.BadRequest("messages", $"holds {messages.Count} messages; at most {options.MaxMessages}");
        var result = new List<ChatMessage>(messages.Count);
        long chars = 0;
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            string at = $"messages[{i}]";
            if (m is null) throw ApiException.BadRequest(at, "must be an object with role and content");
            if (string.IsNullOrEmpty(m.Role)) throw ApiException.BadRequest($"{at}.role", "is required");
            if (!Roles.Contains(m.Role))
                throw ApiException.BadRequest($"{at}.role", $"unknown role '{m.Role}' (expected system, user, assistant, developer or tool)");
            // OpenAI's "developer" role is the newer name of "system"; chat templates only know "system".
            string role = m.Role == "developer" ? "system" : m.Role;
            var toolCalls = role == "assistant" && m.ToolCalls is { Count: > 0 } ? ParseToolCalls(m.ToolCalls, at) : null;
            // An assistant turn that only calls tools has no content (null in OpenAI's form); templates expect a string.
            string content = toolCalls is not null && m.Content is null or { ValueKind: JsonValueKind.Null } ? "" : ParseContent(m.Content, $"{at}.content");
            if (role == "tool" && string.IsNullOrEmpty(m.ToolCallId)) throw ApiException.BadRequest($"{at}.tool_call_id", "is required for a tool message");
            var message = new ChatMessage(role, content)
            {
                ToolCalls = toolCalls,
                ToolCallId = role == "tool" ? m.ToolCallId : null,
                Name = m.Name,
            };
            chars += message.Content.Length;
            if (chars > options.MaxPromptChars)
                throw ApiException.BadRequest("messages", $"content is over {options.MaxPromptChars} characters in all");
            result.Add(message);
        }
        return result;
    }

    private static List<ChatToolCall> ParseToolCalls(List<ToolCallDto?> calls, string at)
    {
        var result = new List<ChatToolCall>(calls.Count);
        for (int j = 0; j < calls.Count; j++)
        {
            string field = $"{at}.tool_calls[{j}]";
            var c = calls[j] ?? throw ApiException.BadRequest(field, "must be an object {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
            if (c.Type is not (null or "function")) throw ApiException.BadRequest($"{field}.type", "must be \"function\"");
            if (c.Function is not { } f) throw ApiException.BadRequest($"{field}.function", "is required");
            if (string.IsNullOrEmpty(f.Name)) throw ApiException.BadRequest($"{field}.function.name", "is required");
            result.Add(new ChatToolCall(c.Id ?? "", f.Name, ParseArguments(f.Arguments, $"{field}.function.arguments")));
        }
        return result;
    }

    /// <summary>A call's arguments as an object: OpenAI sends them as a JSON string, transformers' templates read them
    /// as a dict.</summary>
    private static JsonElement ParseArguments(JsonElement? arguments, string field)
    {
        if (arguments is not { } a || a.ValueKind == JsonValueKind.Null) throw ApiException.BadRequest(field, "is required");
        if (a.ValueKind == JsonValueKind.Object) return a.Clone();
        if (a.ValueKind != JsonValueKind.String) throw ApiException.BadRequest(field, "must be a JSON object, or a string that holds one");
        try
        {
            using var doc = JsonDocument.Parse(Text(a, field));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest(field, "must hold a JSON object");
            return doc.RootElement.Clone();
        }
        catch (JsonException e) { throw ApiException.BadRequest(field, $"is not valid JSON: {e.Message}"); }
    }

    private static string ParseContent(JsonElement? content, string field)
    {
        if (content is not { } c || c.ValueKind == JsonValueKind.Null) throw ApiException.BadRequest(field, "is required");
        if (c.ValueKind == JsonValueKind.String) return Text(c, field);
        if (c.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest(field, "must be a string or an array of text parts");
        var text = new StringBuilder();
        int i = 0;
        foreach (var part in c.EnumerateArray())
        {
            string at = $"{field}[{i++}]";
            try { foreach (var _ in part.ValueKind == JsonValueKind.Object ? part.EnumerateObject().Select(p => p.Name) : []) { } }
            catch (InvalidOperationException) { throw ApiException.BadRequest(at, "has a name that is not Unicode text: it holds a lone UTF-16 surrogate"); }
            if (part.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest(at, "must be an object {\"type\":\"text\",\"text\":...}");
            if (!part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || Text(type, $"{at}.type") != "text")
                throw ApiException.BadRequest($"{at}.type", "only \"text\" parts are supported");
            if (!part.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                throw ApiException.BadRequest($"{at}.text", "must be a string");
            text.Append(Text(t, $"{at}.text"));
        }
        return text.ToString();
    }

    /// <summary>Longest stop string, in UTF-16 characters: every one is matched against the text at each token.</summary>
    public const int MaxStopLength = 1000;

    public static IReadOnlyList<string> ParseStop(JsonElement? stop, int maxStops)
    {
        if (stop is not { } s || s.ValueKind == JsonValueKind.Null) return Array.Empty<string>();
        if (s.ValueKind == JsonValueKind.String)
        {
            string v = Text(s, "stop");
            if (v.Length == 0) throw ApiException.BadRequest("stop", "must not be empty");
            return [CheckStop("stop", v)];
        }
        if (s.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest("stop", "must be a string or an array of strings");
        var list = new List<string>();
        foreach (var item in s.EnumerateArray())
        {
            string field = $"stop[{list.Count}]";
            string? v = item.ValueKind == JsonValueKind.String ? Text(item, field) : null;
            if (string.IsNullOrEmpty(v)) throw ApiException.BadRequest("stop", "must be a string or an array of non-empty strings");
            list.Add(CheckStop(field, v));
        }
        if (list.Count > maxStops) throw ApiException.BadRequest("stop", $"at most {maxStops} stop strings");
        return list;
    }

    /// <summary>A stop string the matcher can hold: at most <see cref="MaxStopLength"/> characters.</summary>
    private static string CheckStop(string field, string v) =>
        v.Length <= MaxStopLength ? v : throw ApiException.BadRequest(field, $"is {v.Length} characters; at most {MaxStopLength}");

    /// <summary>A JSON string's text. JSON lets a string carry a lone UTF-16 surrogate ("\udbff"), which is no text: the
    /// reader refuses it, and the client hears which field.</summary>
    private static string Text(JsonElement e, string field)
    {
        try { return e.GetString()!; }
        catch (InvalidOperationException) { throw ApiException.BadRequest(field, "is not Unicode text: it holds a lone UTF-16 surrogate"); }
    }

    /// <summary>Prompts of /v1/completions: a string, an array of strings, an array of token ids, or an array of arrays
    /// of token ids; at most <see cref="Choices.MaxPrompts"/>, and <see cref="ApiOptions.MaxPromptChars"/> characters in all.
    /// Each prompt's text is what an echo repeats: as written, or the token ids decoded.</summary>
    public static IReadOnlyList<(IReadOnlyList<int> Ids, string Text)> EncodeCompletionPrompts(JsonElement? prompt, ITokenizer tokenizer, ApiOptions options)
    {
        const string Shapes = "must be a string, an array of strings, an array of token ids or an array of arrays of token ids";
        if (prompt is not { } p || p.ValueKind == JsonValueKind.Null) throw ApiException.BadRequest("prompt", "is required");
        if (p.ValueKind == JsonValueKind.String)
        {
            string text = Text(p, "prompt");
            return [(EncodeText(text, tokenizer, options), text)];
        }
        if (p.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest("prompt", Shapes);
        var items = p.EnumerateArray().ToList();
        if (items.Count == 0) throw ApiException.BadRequest("prompt", "must not be empty");
        if (items.All(i => i.ValueKind == JsonValueKind.Number)) return [TokenIds(items, "prompt", tokenizer)];
        if (items.Count > Choices.MaxPrompts) throw ApiException.BadRequest("prompt", $"holds {items.Count} prompts; at most {Choices.MaxPrompts}");
        var prompts = new List<(IReadOnlyList<int>, string)>(items.Count);
        if (items.All(i => i.ValueKind == JsonValueKind.String))
        {
            var texts = items.Select((t, i) => Text(t, $"prompt[{i}]")).ToList();
            if (texts.Sum(t => (long)t.Length) > options.MaxPromptChars)
                throw ApiException.BadRequest("prompt", $"is over {options.MaxPromptChars} characters in all");
            for (int i = 0; i < texts.Count; i++)
            {
                if (texts[i].Length == 0) throw ApiException.BadRequest($"prompt[{i}]", "must not be empty");
                prompts.Add((EncodeText(texts[i], tokenizer, options), texts[i]));
            }
            return prompts;
        }
        if (!items.All(i => i.ValueKind == JsonValueKind.Array)) throw ApiException.BadRequest("prompt", Shapes);
        for (int i = 0; i < items.Count; i++)
        {
            var ids = items[i].EnumerateArray().ToList();
            if (ids.Count == 0) throw ApiException.BadRequest($"prompt[{i}]", "must not be empty");
            prompts.Add(TokenIds(ids, $"prompt[{i}]", tokenizer));
        }
        return prompts;
    }

    private static (IReadOnlyList<int>, string) TokenIds(List<JsonElement> items, string field, ITokenizer tokenizer)
    {
        var ids = new List<int>(items.Count);
        foreach (var i in items)
        {
            if (i.ValueKind != JsonValueKind.Number || !i.TryGetInt32(out int id) || id < 0 || id >= tokenizer.VocabSize)
                throw ApiException.BadRequest(field, $"token ids must be integers in [0, {tokenizer.VocabSize})");
            ids.Add(id);
        }
        return (ids, tokenizer.Decode(ids, skipSpecialTokens: false));
    }

    /// <summary>OpenAI's <c>logit_bias</c>: an object of token ids (as strings) to numbers in [-100, 100].</summary>
    public static IReadOnlyDictionary<int, float>? ParseLogitBias(JsonElement? value, int vocabSize)
    {
        if (value is not { } v || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Object)
            throw ApiException.BadRequest("logit_bias", "must be an object of token ids to numbers in [-100, 100], like {\"1734\": -100}");
        var bias = new Dictionary<int, float>();
        foreach (var entry in v.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id)
                || id >= vocabSize)
                throw ApiException.BadRequest("logit_bias", $"'{entry.Name}' is not a token id in [0, {vocabSize})");
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetDouble(out double b) || b is < -100 or > 100)
                throw ApiException.BadRequest("logit_bias", $"the bias of token {id} must be a number in [-100, 100]");
            if (bias.Count == SamplingParams.MaxLogitBias)
                throw ApiException.BadRequest("logit_bias", $"at most {SamplingParams.MaxLogitBias} tokens");
            bias[id] = (float)b;
        }
        return bias.Count == 0 ? null : bias;
    }

    /// <summary>Tokenizes a prompt of at most <see cref="ApiOptions.MaxPromptChars"/> characters: the cap comes before the
    /// tokenizer, whose time and memory grow with the text.</summary>
    public static IReadOnlyList<int> EncodeText(string text, ITokenizer tokenizer, ApiOptions options)
    {
        if (text.Length == 0) throw ApiException.BadRequest("prompt", "must not be empty");
        if (text.Length > options.MaxPromptChars)
            throw ApiException.BadRequest("prompt", $"is {text.Length} characters; at most {options.MaxPromptChars}");
        return tokenizer.Encode(text, addSpecialTokens: true);
    }

    public static IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages, ITokenizer tokenizer, IReadOnlyList<JsonElement>? tools = null)
    {
        if (tools is { Count: > 0 } && tokenizer.HasChatTemplate && !tokenizer.ChatTemplateSupportsTools)
            throw ApiException.BadRequest("tools", "this model's chat template does not support tools (it never reads the tools variable)");
        string rendered;
        try { rendered = tokenizer.ApplyChatTemplate(messages, addGenerationPrompt: true, tools); }
        // A template that breaks its limits (or cannot be used at all) is the model's configuration, not the request:
        // 500 with its own code, so that a client does not retry different messages and an operator sees the reason.
        catch (ChatTemplateException e) when (e.IsTemplateFault) { throw new ApiException(500, null, e.Message, "chat_template_error"); }
        catch (ChatTemplateException e) { throw ApiException.BadRequest("messages", e.Message); }
        return tokenizer.Encode(rendered, addSpecialTokens: false);
    }

    /// <summary>
    /// Validates sampling and the context budget. <paramref name="promptField"/> and <paramref name="maxField"/> are the
    /// names the client used, so that 400/413 name them.
    /// </summary>
    public static SamplingParams BuildSampling(
        ISamplingFields f, int? maxTokens, string maxField, float defaultTemperature, bool logprobs, int topLogprobs,
        string topLogprobsField, int promptTokens, string promptField, IServedModel model, ApiOptions options)
    {
        if (promptTokens == 0) throw ApiException.BadRequest(promptField, "must not be empty");
        if (maxTokens is < 1) throw ApiException.BadRequest(maxField, "must be >= 1");
        int context = model.ContextLength;
        if (promptTokens >= context)
            throw new ApiException(413, promptField,
                $"{promptField}: is {promptTokens} tokens; the model's context is {context} tokens", "context_length_exceeded");
        if (maxTokens is { } m && KvNeed.Tokens((long)promptTokens, m) > context)
            throw new ApiException(413, maxField,
                $"{maxField}: prompt ({promptTokens} tokens) + {maxField} ({m}) = {KvNeed.Tokens((long)promptTokens, m)} exceeds the model's context of {context} tokens",
                "context_length_exceeded");
        int maxNew = maxTokens ?? Math.Min(options.DefaultMaxTokens, context - promptTokens);

        var sampling = new SamplingParams
        {
            Temperature = f.Temperature ?? defaultTemperature,
            TopP = f.TopP ?? 1f,
            TopK = f.TopK ?? 0,
            MinP = f.MinP ?? 0f,
            RepetitionPenalty = f.RepetitionPenalty ?? 1f,
            PresencePenalty = f.PresencePenalty ?? 0f,
            FrequencyPenalty = f.FrequencyPenalty ?? 0f,
            Seed = f.Seed,
            MaxNewTokens = maxNew,
            MinNewTokens = f.MinTokens ?? 0,
            IgnoreEos = f.IgnoreEos ?? false,
            Logprobs = logprobs,
            TopLogprobs = topLogprobs,
            LogitBias = ParseLogitBias(f.LogitBias, model.Tokenizer.VocabSize),
        };
        try { sampling.Validate(); }
        catch (ArgumentException e)
        {
            string field = e.ParamName switch
            {
                "max_new_tokens" => maxField,
                "top_logprobs" => topLogprobsField,
                { } p => p,
                null => "body",
            };
            // ArgumentException appends " (Parameter 'x')" to Message; the field is already in front.
            string reason = e.Message.Split(" (Parameter", 2)[0];
            throw ApiException.BadRequest(field, reason);
        }
        return sampling;
    }
}
