using ActorQuery.Contracts;

namespace ActorQuery.Api.Generation;

/// <summary>What one HTTP request asks the actors for, after validation and tokenisation.</summary>
/// <param name="MaxTokensField">The request's name for the token budget, so that a later 413 can name it.</param>
internal sealed record GenerationJob(
    string RequestId, IReadOnlyList<int> PromptIds, SamplingParams Sampling, IReadOnlyList<string> Stop,
    TimeSpan? Timeout, string MaxTokensField)
{
    /// <summary>The model a pool should answer with; null: whichever the workers serve (a server of one model).</summary>
    public string? Model { get; init; }
    /// <summary>The request's keep_alive (see <see cref="QueryRequest.KeepAlive"/> in the Actors).</summary>
    public TimeSpan? KeepAlive { get; init; }
    /// <summary>The model that answers, for the metrics' model label.</summary>
    public string? ModelName { get; init; }
    /// <summary>Jobs with the same key prefer one worker (see <see cref="ActorQuery.Actors.QueryRequest.AffinityKey"/>).</summary>
    public string? AffinityKey { get; init; }

    /// <summary>The model and keep_alive fields of a request, resolved against the served models.</summary>
    public GenerationJob For(IServedModels models, IServedModel model, System.Text.Json.JsonElement? keepAlive) =>
        this with { Model = models.IsPool ? model.Name : null, ModelName = model.Name, KeepAlive = KeepAliveOf(keepAlive) };

    /// <summary>A number (seconds) or a duration text; anything else is a 400 naming keep_alive.</summary>
    public static TimeSpan? KeepAliveOf(System.Text.Json.JsonElement? value)
    {
        if (value is not { } v || v.ValueKind == System.Text.Json.JsonValueKind.Null) return null;
        try
        {
            return v.ValueKind switch
            {
                System.Text.Json.JsonValueKind.Number => KeepAliveDuration.FromSeconds(v.GetDouble()),
                System.Text.Json.JsonValueKind.String => KeepAliveDuration.Parse(v.GetString()!),
                _ => throw new FormatException("must be a number of seconds or a duration text like \"5m\""),
            };
        }
        catch (FormatException e) { throw Errors.ApiException.BadRequest("keep_alive", e.Message); }
    }
}
