using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Api.Generation;

/// <summary>
/// Reads a Responses API request into the chat pipeline's terms: <c>instructions</c> and <c>input</c> items become chat
/// messages (a function_call item an assistant tool call, a function_call_output item a tool message), the flat function
/// tools and tool_choice become chat completions' nested ones, and <c>text.format</c> an output constraint. The chat
/// readers (<see cref="PromptBuilder"/>, <see cref="ToolRequest"/>, <see cref="ConstraintReader"/>) then check them; their
/// errors are renamed to the Responses field the client wrote.
/// </summary>
internal static class ResponsesInput
{
    private static readonly HashSet<string> Roles = new(StringComparer.Ordinal) { "user", "system", "developer", "assistant" };

    /// <summary>Refuses what a stateless server of function tools cannot do, naming the field.</summary>
    public static void CheckSupported(ResponsesRequest body)
    {
        if (body.Store == true)
            throw ApiException.BadRequest("store", "must be false or absent: this server is stateless and keeps no responses (store defaults to false here)");
        if (body.PreviousResponseId is not null)
            throw ApiException.BadRequest("previous_response_id", "is not supported: the server keeps no responses; send the whole conversation as input");
        if (body.Background == true) throw ApiException.BadRequest("background", "is not supported: responses run while the request is open");
        if (body.Conversation is { ValueKind: not JsonValueKind.Null })
            throw ApiException.BadRequest("conversation", "is not supported: the server keeps no conversations; send the whole conversation as input");
        if (body.Prompt is { ValueKind: not JsonValueKind.Null }) throw ApiException.BadRequest("prompt", "stored prompt templates are not supported");
        if (body.Include is { Count: > 0 }) throw ApiException.BadRequest("include", "is not supported");
        if (body.Reasoning is { ValueKind: JsonValueKind.Object } r && r.EnumerateObject().Any(p => p.Value.ValueKind != JsonValueKind.Null))
            throw ApiException.BadRequest("reasoning", "is not supported: the served models do not reason");
        if (body.Truncation is not (null or "disabled"))
            throw ApiException.BadRequest("truncation", "only \"disabled\" is supported: an input over the context is a 413");
        if (body.TopLogprobs is not null) throw ApiException.BadRequest("top_logprobs", "is not supported on /v1/responses");
        if (body.MaxToolCalls is not null) throw ApiException.BadRequest("max_tool_calls", "is not supported");
        if (body.Metadata is { } m && m.ValueKind is not (JsonValueKind.Null or JsonValueKind.Object))
            throw ApiException.BadRequest("metadata", "must be an object of strings");
        if (body.Metadata is { ValueKind: JsonValueKind.Object } md)
        {
            var pairs = md.EnumerateObject().ToList();
            if (pairs.Count > 16) throw ApiException.BadRequest("metadata", "at most 16 pairs");
            if (pairs.Any(p => p.Name.Length > 64 || p.Value.ValueKind != JsonValueKind.String || p.Value.GetString()!.Length > 512))
                throw ApiException.BadRequest("metadata", "keys must be at most 64 characters and values strings of at most 512");
        }
    }

    /// <summary>The instructions and input as chat messages, in order.</summary>
    public static List<ChatMessageDto> Messages(string? instructions, JsonElement? input)
    {
        var messages = new List<ChatMessageDto>();
        if (!string.IsNullOrEmpty(instructions)) messages.Add(new ChatMessageDto { Role = "system", Content = Json(instructions) });
        if (input is not { } i || i.ValueKind == JsonValueKind.Null) throw ApiException.BadRequest("input", "is required");
        if (i.ValueKind == JsonValueKind.String)
        {
            messages.Add(new ChatMessageDto { Role = "user", Content = Json(Text(i, "input")) });
            return messages;
        }
        if (i.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest("input", "must be a string or a list of items");
        int index = 0;
        foreach (var item in i.EnumerateArray())
        {
            string at = $"input[{index++}]";
            if (item.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest(at, "must be an object (a message, function_call or function_call_output item)");
            string type = item.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? Text(t, $"{at}.type") : "message";
            switch (type)
            {
                case "message":
                    messages.Add(Message(item, at));
                    break;
                case "function_call":
                {
                    string name = RequiredString(item, "name", at);
                    string callId = RequiredString(item, "call_id", at);
                    string arguments = RequiredString(item, "arguments", at);
                    try
                    {
                        using var doc = JsonDocument.Parse(arguments);
                        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"{at}.arguments", "must hold a JSON object");
                    }
                    catch (JsonException e) { throw ApiException.BadRequest($"{at}.arguments", $"is not valid JSON: {e.Message}"); }
                    var call = new ToolCallDto { Id = callId, Type = "function", Function = new FunctionCallDto { Name = name, Arguments = Json(arguments) } };
                    // Calls that follow an assistant turn belong to it, as chat completions' tool_calls do.
                    if (messages.Count > 0 && messages[^1] is { Role: "assistant" } last) (last.ToolCalls ??= []).Add(call);
                    else messages.Add(new ChatMessageDto { Role = "assistant", Content = null, ToolCalls = [call] });
                    break;
                }
                case "function_call_output":
                {
                    string callId = RequiredString(item, "call_id", at);
                    if (!item.TryGetProperty("output", out var output)) throw ApiException.BadRequest($"{at}.output", "is required");
                    string text = output.ValueKind == JsonValueKind.String ? Text(output, $"{at}.output") : Parts(output, $"{at}.output");
                    messages.Add(new ChatMessageDto { Role = "tool", ToolCallId = callId, Content = Json(text) });
                    break;
                }
                default:
                    throw ApiException.BadRequest($"{at}.type", $"'{type}' is not supported (message, function_call or function_call_output)");
            }
        }
        if (index == 0) throw ApiException.BadRequest("input", "must hold at least one item");
        return messages;
    }

    private static ChatMessageDto Message(JsonElement item, string at)
    {
        string role = RequiredString(item, "role", at);
        if (!Roles.Contains(role)) throw ApiException.BadRequest($"{at}.role", $"'{role}' is not one of user, system, developer, assistant");
        if (!item.TryGetProperty("content", out var content)) throw ApiException.BadRequest($"{at}.content", "is required");
        string text = content.ValueKind == JsonValueKind.String ? Text(content, $"{at}.content") : Parts(content, $"{at}.content");
        return new ChatMessageDto { Role = role, Content = Json(text) };
    }

    /// <summary>Content parts joined: input_text, output_text (and refusal) parts; images and files are refused.</summary>
    private static string Parts(JsonElement content, string field)
    {
        if (content.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest(field, "must be a string or a list of input_text/output_text parts");
        var text = new StringBuilder();
        int i = 0;
        foreach (var part in content.EnumerateArray())
        {
            string at = $"{field}[{i++}]";
            if (part.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest(at, "must be an object {\"type\": \"input_text\", \"text\": ...}");
            string type = RequiredString(part, "type", at);
            string key = type switch
            {
                "input_text" or "output_text" or "text" => "text",
                "refusal" => "refusal",
                _ => throw ApiException.BadRequest($"{at}.type", $"'{type}' is not supported (input_text or output_text)"),
            };
            text.Append(RequiredString(part, key, at));
        }
        return text.ToString();
    }

    /// <summary>The flat Responses function tools in chat completions' shape <c>{"type": "function", "function": {...}}</c>.</summary>
    public static List<JsonElement>? ChatTools(List<JsonElement>? tools)
    {
        if (tools is null) return null;
        var result = new List<JsonElement>(tools.Count);
        for (int i = 0; i < tools.Count; i++)
        {
            var t = tools[i];
            string at = $"tools[{i}]";
            if (t.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest(at, "must be an object {\"type\": \"function\", \"name\", \"parameters\"}");
            string type = RequiredString(t, "type", at);
            if (type != "function")
                throw ApiException.BadRequest($"{at}.type", $"'{type}' is not supported: only function tools (built-in tools such as web_search run at OpenAI)");
            var function = new JsonObject();
            foreach (var p in t.EnumerateObject())
                if (p.Name is "name" or "description" or "parameters" or "strict") function[p.Name] = JsonNode.Parse(p.Value.GetRawText());
            result.Add(JsonSerializer.SerializeToElement(new JsonObject { ["type"] = "function", ["function"] = function }));
        }
        return result;
    }

    /// <summary>tool_choice in chat completions' shape.</summary>
    public static JsonElement? ChatToolChoice(JsonElement? choice)
    {
        if (choice is not { ValueKind: JsonValueKind.Object } c) return choice;
        string type = c.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
        if (type != "function" || !c.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
            throw ApiException.BadRequest("tool_choice", "must be auto, none, required or {\"type\": \"function\", \"name\": ...}");
        return JsonSerializer.SerializeToElement(new { type = "function", function = new { name = name.GetString() } });
    }

    /// <summary>text.format as an output constraint: null for text.</summary>
    public static OutputConstraint? Format(ResponsesTextDto? text)
    {
        if (text?.Format is not { ValueKind: not JsonValueKind.Null } f) return null;
        if (f.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest("text.format", "must be an object with a type");
        string type = RequiredString(f, "type", "text.format");
        var dto = type switch
        {
            "text" => new ResponseFormatDto { Type = "text" },
            "json_object" => new ResponseFormatDto { Type = "json_object" },
            "json_schema" => new ResponseFormatDto
            {
                Type = "json_schema",
                JsonSchema = new JsonSchemaFormatDto
                {
                    Name = f.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null,
                    Schema = f.TryGetProperty("schema", out var s) && s.ValueKind != JsonValueKind.Null ? s : null,
                },
            },
            _ => throw ApiException.BadRequest("text.format.type", $"'{type}' is not one of text, json_object, json_schema"),
        };
        return Renamed(() => ConstraintReader.FromResponseFormat(dto), "response_format.json_schema", "text.format");
    }

    /// <summary>Runs a chat reader and renames the field of its 400 to the Responses field (<paramref name="from"/> → <paramref name="to"/>).</summary>
    public static T Renamed<T>(Func<T> read, string from, string to)
    {
        try { return read(); }
        catch (ApiException e) when (e.Field is { } field && field.Contains(from, StringComparison.Ordinal))
        {
            string renamed = field.Replace(from, to, StringComparison.Ordinal);
            throw new ApiException(e.Status, renamed, e.Message.Replace(field, renamed, StringComparison.Ordinal), e.Code);
        }
    }

    private static string RequiredString(JsonElement item, string name, string at)
    {
        if (!item.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.String) throw ApiException.BadRequest($"{at}.{name}", "must be a string");
        return Text(v, $"{at}.{name}");
    }

    private static string Text(JsonElement e, string field)
    {
        try { return e.GetString()!; }
        catch (InvalidOperationException) { throw ApiException.BadRequest(field, "is not Unicode text: it holds a lone UTF-16 surrogate"); }
    }

    private static JsonElement Json(string text) => JsonSerializer.SerializeToElement(text);
}
