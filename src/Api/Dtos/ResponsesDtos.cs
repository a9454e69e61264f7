using System.Text.Json;

namespace ActorQuery.Api.Dtos;

/// <summary>Body of POST /v1/responses (OpenAI's Responses API, stateless: nothing is stored between requests).
/// Beside OpenAI's fields it takes this server's sampling extensions (top_k, min_p, seed, stop, ...).</summary>
public sealed class ResponsesRequest : ISamplingFields
{
    public string? Model { get; set; }
    public JsonElement? KeepAlive { get; set; }
    /// <summary>A string (one user message) or a list of items: messages, function_call and function_call_output.</summary>
    public JsonElement? Input { get; set; }
    /// <summary>A system message put before the input.</summary>
    public string? Instructions { get; set; }
    /// <summary>Function tools in the Responses shape <c>{"type": "function", "name", "description", "parameters", "strict"}</c>.</summary>
    public List<JsonElement>? Tools { get; set; }
    /// <summary>"auto", "none", "required" or <c>{"type": "function", "name": ...}</c>.</summary>
    public JsonElement? ToolChoice { get; set; }
    public bool? ParallelToolCalls { get; set; }
    /// <summary><c>{"format": {"type": "text" | "json_object" | "json_schema", ...}}</c>.</summary>
    public ResponsesTextDto? Text { get; set; }
    public int? MaxOutputTokens { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    public bool? Stream { get; set; }
    /// <summary>Only false (the default here): the server keeps no responses.</summary>
    public bool? Store { get; set; }
    /// <summary>Up to 16 string pairs, echoed in the response.</summary>
    public JsonElement? Metadata { get; set; }
    public string? User { get; set; }

    // OpenAI fields of a stateful or hosted service: refused with a 400 naming them when given.
    public string? PreviousResponseId { get; set; }
    public bool? Background { get; set; }
    public JsonElement? Conversation { get; set; }
    public JsonElement? Prompt { get; set; }
    public List<string>? Include { get; set; }
    public JsonElement? Reasoning { get; set; }
    public string? Truncation { get; set; }
    public int? TopLogprobs { get; set; }
    public int? MaxToolCalls { get; set; }

    public int? TopK { get; set; }
    public float? MinP { get; set; }
    public float? RepetitionPenalty { get; set; }
    public float? PresencePenalty { get; set; }
    public float? FrequencyPenalty { get; set; }
    public long? Seed { get; set; }
    public JsonElement? Stop { get; set; }
    public bool? IgnoreEos { get; set; }
    public int? MinTokens { get; set; }
    public JsonElement? LogitBias { get; set; }
}

public sealed class ResponsesTextDto
{
    public JsonElement? Format { get; set; }
    public string? Verbosity { get; set; }
}

/// <summary>A response object (POST /v1/responses, and inside the created, in_progress and completed events).</summary>
/// <param name="Output">Message and function_call items (<see cref="ResponseMessageItem"/>, <see cref="ResponseFunctionCallItem"/>).</param>
public sealed record ResponseObject(
    string Id, string Object, long CreatedAt, string Status, ResponseErrorOut? Error, ResponseIncompleteDetails? IncompleteDetails,
    string? Instructions, int? MaxOutputTokens, string Model, IReadOnlyList<object> Output, bool ParallelToolCalls,
    string? PreviousResponseId, ResponseReasoningOut Reasoning, bool Store, float Temperature, ResponseTextOut Text,
    JsonElement ToolChoice, IReadOnlyList<JsonElement> Tools, float TopP, string Truncation, ResponseUsage? Usage, string? User,
    JsonElement Metadata);

public sealed record ResponseErrorOut(string Code, string Message);

/// <param name="Reason">max_output_tokens: the answer was cut at the token budget.</param>
public sealed record ResponseIncompleteDetails(string Reason);

public sealed record ResponseReasoningOut(string? Effort, string? Summary);

public sealed record ResponseTextOut(JsonElement Format);

public sealed record ResponseUsage(int InputTokens, ResponseInputTokensDetails InputTokensDetails, int OutputTokens,
    ResponseOutputTokensDetails OutputTokensDetails, int TotalTokens)
{
    public static ResponseUsage Of(int input, int output, int cached) => new(input, new(cached), output, new(0), input + output);
}

public sealed record ResponseInputTokensDetails(int CachedTokens);

public sealed record ResponseOutputTokensDetails(int ReasoningTokens);

/// <summary>An assistant message of the output; its content is one <c>output_text</c> part.</summary>
public sealed record ResponseMessageItem(string Type, string Id, string Status, string Role, IReadOnlyList<ResponseOutputText> Content);

public sealed record ResponseOutputText(string Type, string Text, IReadOnlyList<object> Annotations, IReadOnlyList<object> Logprobs);

/// <param name="CallId">What a function_call_output item of the next request answers.</param>
/// <param name="Arguments">The arguments object as JSON text.</param>
public sealed record ResponseFunctionCallItem(string Type, string Id, string CallId, string Name, string Arguments, string Status);

/// <summary>Streamed events, each with its <c>type</c> (also the SSE event name) and <c>sequence_number</c>.</summary>
public sealed record ResponseLifecycleEvent(string Type, int SequenceNumber, ResponseObject Response);

public sealed record ResponseOutputItemEvent(string Type, int SequenceNumber, int OutputIndex, object Item);

public sealed record ResponseContentPartEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, int ContentIndex, ResponseOutputText Part);

public sealed record ResponseTextDeltaEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, int ContentIndex, string Delta,
    IReadOnlyList<object> Logprobs);

public sealed record ResponseTextDoneEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, int ContentIndex, string Text,
    IReadOnlyList<object> Logprobs);

public sealed record ResponseArgumentsDeltaEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, string Delta);

public sealed record ResponseArgumentsDoneEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, string Name, string Arguments);

public sealed record ResponseErrorEvent(string Type, int SequenceNumber, string? Code, string Message, string? Param);
