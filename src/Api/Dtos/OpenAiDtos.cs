using System.Text.Json;

namespace ActorQuery.Api.Dtos;

/// <summary>The sampling fields every generation endpoint shares.</summary>
public interface ISamplingFields
{
    float? Temperature { get; }
    float? TopP { get; }
    int? TopK { get; }
    float? MinP { get; }
    float? RepetitionPenalty { get; }
    float? PresencePenalty { get; }
    float? FrequencyPenalty { get; }
    long? Seed { get; }
    JsonElement? Stop { get; }
    bool? IgnoreEos { get; }
    int? MinTokens { get; }
    /// <summary>Token id (as a string) → bias in [-100, 100] added to its logit.</summary>
    JsonElement? LogitBias { get; }
}

public sealed class ChatMessageDto
{
    public string? Role { get; set; }
    /// <summary>A string, or an array of content parts of type "text".</summary>
    public JsonElement? Content { get; set; }
    public string? Name { get; set; }
    /// <summary>An assistant turn's function calls.</summary>
    public List<ToolCallDto?>? ToolCalls { get; set; }
    /// <summary>The call a "tool" message answers.</summary>
    public string? ToolCallId { get; set; }
}

public sealed class ToolCallDto
{
    public string? Id { get; set; }
    public string? Type { get; set; }
    public FunctionCallDto? Function { get; set; }
}

public sealed class FunctionCallDto
{
    public string? Name { get; set; }
    /// <summary>The arguments as a JSON string (OpenAI's form) or an object.</summary>
    public JsonElement? Arguments { get; set; }
}

public sealed class StreamOptionsDto
{
    public bool? IncludeUsage { get; set; }
}

/// <summary>OpenAI's <c>response_format</c>: <c>text</c>, <c>json_object</c> (any JSON object) or <c>json_schema</c>
/// (the output validates against <c>json_schema.schema</c>). Both JSON forms are enforced while decoding.</summary>
public sealed class ResponseFormatDto
{
    public string? Type { get; set; }
    public JsonSchemaFormatDto? JsonSchema { get; set; }
}

public sealed class JsonSchemaFormatDto
{
    public string? Name { get; set; }
    public string? Description { get; set; }
    public JsonElement? Schema { get; set; }
    /// <summary>Accepted for compatibility: the schema is always enforced.</summary>
    public bool? Strict { get; set; }
}

/// <summary>Body of POST /v1/chat/completions (OpenAI's fields; unknown ones are ignored).</summary>
public sealed class ChatCompletionRequest : ISamplingFields
{
    public string? Model { get; set; }
    /// <summary>Ollama's keep_alive: how long the model stays loaded after this request (see <see cref="ActorQuery.Contracts.KeepAliveDuration"/>).</summary>
    public System.Text.Json.JsonElement? KeepAlive { get; set; }
    public List<ChatMessageDto>? Messages { get; set; }
    public int? MaxTokens { get; set; }
    public int? MaxCompletionTokens { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    public int? TopK { get; set; }
    public float? MinP { get; set; }
    public float? RepetitionPenalty { get; set; }
    public float? PresencePenalty { get; set; }
    public float? FrequencyPenalty { get; set; }
    public long? Seed { get; set; }
    public JsonElement? Stop { get; set; }
    public bool? Stream { get; set; }
    public StreamOptionsDto? StreamOptions { get; set; }
    public bool? Logprobs { get; set; }
    public int? TopLogprobs { get; set; }
    public int? N { get; set; }
    public bool? IgnoreEos { get; set; }
    public int? MinTokens { get; set; }
    /// <summary>json_object or json_schema: the output is held to it while decoding.</summary>
    public ResponseFormatDto? ResponseFormat { get; set; }
    /// <summary>Functions the model may call, each <c>{"type": "function", "function": {name, description, parameters}}</c>;
    /// read as raw JSON so that a bad entry is a 400 naming its path.</summary>
    public List<JsonElement>? Tools { get; set; }
    /// <summary>"auto", "none", "required" or <c>{"type": "function", "function": {"name": ...}}</c>.</summary>
    public JsonElement? ToolChoice { get; set; }
    public bool? ParallelToolCalls { get; set; }
    public JsonElement? LogitBias { get; set; }
}

/// <summary>Body of POST /v1/completions.</summary>
public sealed class CompletionRequest : ISamplingFields
{
    public string? Model { get; set; }
    public System.Text.Json.JsonElement? KeepAlive { get; set; }
    /// <summary>A string, an array of strings, an array of token ids, or an array of arrays of token ids.</summary>
    public JsonElement? Prompt { get; set; }
    public int? MaxTokens { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    public int? TopK { get; set; }
    public float? MinP { get; set; }
    public float? RepetitionPenalty { get; set; }
    public float? PresencePenalty { get; set; }
    public float? FrequencyPenalty { get; set; }
    public long? Seed { get; set; }
    public JsonElement? Stop { get; set; }
    public bool? Stream { get; set; }
    public StreamOptionsDto? StreamOptions { get; set; }
    /// <summary>Legacy completions: how many alternatives to return with each token's log-probability (0..5).</summary>
    public int? Logprobs { get; set; }
    public bool? Echo { get; set; }
    public int? N { get; set; }
    public bool? IgnoreEos { get; set; }
    public int? MinTokens { get; set; }
    /// <summary>json_object or json_schema: the output is held to it while decoding.</summary>
    public ResponseFormatDto? ResponseFormat { get; set; }
    public JsonElement? LogitBias { get; set; }
}

public sealed record ChatCompletionResponse(
    string Id, string Object, long Created, string Model, IReadOnlyList<ChatChoice> Choices, UsageDto Usage,
    string? SystemFingerprint = null);

public sealed record ChatChoice(int Index, ChatMessageOut Message, ChatLogprobs? Logprobs, string FinishReason);

/// <param name="Content">The text; null when the turn is only tool calls.</param>
public sealed record ChatMessageOut(string Role, string? Content,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    IReadOnlyList<ToolCallOut>? ToolCalls = null);

public sealed record ToolCallOut(string Id, string Type, FunctionCallOut Function);

/// <param name="Arguments">The arguments object as JSON text, as the model wrote it.</param>
public sealed record FunctionCallOut(string Name, string Arguments);

/// <summary>A piece of a streamed tool call: the first carries id, type and name; later ones more of the arguments.</summary>
public sealed record ToolCallDeltaOut(
    int Index,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    string? Id,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    string? Type,
    FunctionDeltaOut Function);

public sealed record FunctionDeltaOut(
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    string? Name,
    string Arguments);

public sealed record ChatLogprobs(IReadOnlyList<ChatTokenLogprob> Content);

public sealed record ChatTokenLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<ChatTopLogprob> TopLogprobs);

public sealed record ChatTopLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes);

public sealed record ChatCompletionChunk(
    string Id, string Object, long Created, string Model, IReadOnlyList<ChatChunkChoice> Choices, UsageDto? Usage);

public sealed record ChatChunkChoice(int Index, ChatDelta Delta, ChatLogprobs? Logprobs, string? FinishReason);

public sealed record ChatDelta(string? Role, string? Content,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    IReadOnlyList<ToolCallDeltaOut>? ToolCalls = null);

public sealed record CompletionResponse(
    string Id, string Object, long Created, string Model, IReadOnlyList<CompletionChoice> Choices, UsageDto? Usage);

public sealed record CompletionChoice(string Text, int Index, CompletionLogprobs? Logprobs, string? FinishReason);

public sealed record CompletionLogprobs(
    IReadOnlyList<string> Tokens, IReadOnlyList<float> TokenLogprobs,
    IReadOnlyList<Dictionary<string, float>> TopLogprobs, IReadOnlyList<int> TextOffset);

public sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);

/// <param name="Pool">Beside OpenAI's fields, on a server with a model pool: the model's state and memory.</param>
public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, int MaxModelLen,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    ModelPoolDto? Pool = null);

/// <summary>A model of the pool (GET /v1/models, /admin/models).</summary>
/// <param name="State">available, loading, ready, unloading or failed.</param>
/// <param name="ReservationBytes">What it takes of the node's budget while loaded (weights, KV pool, activations, process).</param>
/// <param name="ResidentBytes">Its worker processes' resident memory now; null while not loaded.</param>
/// <param name="KeepAlive">"5m", "forever": idle time before it unloads.</param>
public sealed record ModelPoolDto(
    string State, string? Error, bool Pinned, string KeepAlive, long ReservationBytes, string ReservationTerms, long? ResidentBytes,
    int Live, string Folder, DateTimeOffset? LoadedAt, DateTimeOffset? LastUsed, long Loads, long Unloads, long Evictions, double LoadSeconds);

/// <summary>GET /admin/models: the pool, its budget and what the loaded models reserve of it.</summary>
public sealed record ModelPoolResponse(long BudgetBytes, string BudgetTerms, long ReservedBytes, IReadOnlyList<ModelCard> Models);
