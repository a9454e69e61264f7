using System.Text.Json;

namespace ActorQuery.Api.Dtos;

/// <summary>Body of POST /query: a <c>prompt</c> or chat <c>messages</c>, and how to sample.</summary>
public sealed class NativeQueryRequest : ISamplingFields
{
    /// <summary>The model to answer with; null: the server's default one.</summary>
    public string? Model { get; set; }
    /// <summary>Ollama's keep_alive: how long the model stays loaded after this request.</summary>
    public System.Text.Json.JsonElement? KeepAlive { get; set; }
    /// <summary>Plain text, tokenised as is (no chat template).</summary>
    public string? Prompt { get; set; }
    /// <summary>Chat messages, rendered with the model's chat template.</summary>
    public List<ChatMessageDto>? Messages { get; set; }
    public int? MaxNewTokens { get; set; }
    /// <summary>Alias of max_new_tokens, as OpenAI names it.</summary>
    public int? MaxTokens { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    public int? TopK { get; set; }
    public float? MinP { get; set; }
    public float? RepetitionPenalty { get; set; }
    public float? PresencePenalty { get; set; }
    public float? FrequencyPenalty { get; set; }
    public long? Seed { get; set; }
    /// <summary>A string or an array of strings.</summary>
    public JsonElement? Stop { get; set; }
    public bool? Stream { get; set; }
    public int? TimeoutMs { get; set; }
    public bool? IgnoreEos { get; set; }
    public int? MinTokens { get; set; }
    /// <summary>The output is JSON that validates against this JSON Schema (at most one of json_schema, regex, choices).</summary>
    public JsonElement? JsonSchema { get; set; }
    /// <summary>The whole output matches this regular expression.</summary>
    public string? Regex { get; set; }
    /// <summary>The output is exactly one of these strings.</summary>
    public List<string>? Choices { get; set; }
    /// <summary>Token id (as a string) → bias in [-100, 100] added to its logit, as OpenAI's logit_bias.</summary>
    public JsonElement? LogitBias { get; set; }
}

/// <summary>Reply of POST /query (and the final SSE event of a streamed one, without <c>text</c>).</summary>
public sealed record NativeQueryResponse(
    string Id, string? Text, string FinishReason, UsageDto Usage, bool Cached, long LatencyMs, string Model, string Node);

/// <summary>One SSE <c>chunk</c> event of a streamed /query.</summary>
public sealed record NativeChunk(string Id, string Text);

/// <summary>A query's tokens, in OpenAI's shape (the native /query reply uses it too).</summary>
public sealed record UsageDto(int PromptTokens, int CompletionTokens, int TotalTokens, PromptTokensDetails PromptTokensDetails)
{
    public static UsageDto Of(ActorQuery.Actors.QueryCompleted c) => Of(c.PromptTokens, c.CompletionTokens, c.CachedPromptTokens);

    public static UsageDto Of(int prompt, int completion, int cached) => new(prompt, completion, prompt + completion, new PromptTokensDetails(cached));
}

/// <param name="CachedTokens">Prompt tokens whose keys and values the engine took from its prefix cache instead of
/// computing them (all of them for an answer from the answer cache; 0 with --prefix-caching false).</param>
public sealed record PromptTokensDetails(int CachedTokens);
