using System.Net.ServerSentEvents;
using System.Text.Json;
using ActorQuery.Actors;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Generation;

namespace ActorQuery.Api.Endpoints;

/// <summary>POST /query: the native endpoint (prompt or messages, every sampling field, optional SSE).</summary>
internal static class NativeEndpoints
{
    public static async Task Query(HttpContext context, QueryRunner runner, IServedModels models, ApiOptions options)
    {
        var body = await RequestReader.ReadAsync<NativeQueryRequest>(context, options);
        var model = models.Resolve(body.Model);
        string id = RequestIdMiddleware.Get(context);

        if (body.Prompt is not null && body.Messages is not null)
            throw ApiException.BadRequest("messages", "give either prompt or messages, not both");
        if (body.Prompt is null && body.Messages is null)
            throw ApiException.BadRequest("prompt", "is required (or give messages)");
        if (body.MaxNewTokens is not null && body.MaxTokens is not null)
            throw ApiException.BadRequest("max_tokens", "give either max_new_tokens or max_tokens, not both");
        if (body.TimeoutMs is < 1) throw ApiException.BadRequest("timeout_ms", "must be >= 1");

        string promptField = body.Prompt is not null ? "prompt" : "messages";
        string maxField = body.MaxTokens is not null ? "max_tokens" : "max_new_tokens";
        var stop = PromptBuilder.ParseStop(body.Stop, options.MaxStopStrings);
        IReadOnlyList<int> promptIds = body.Prompt is not null
            ? PromptBuilder.EncodeText(body.Prompt, model.Tokenizer, options)
            : PromptBuilder.EncodeChat(PromptBuilder.ParseMessages(body.Messages, options), model.Tokenizer);
        var sampling = PromptBuilder.BuildSampling(body, body.MaxNewTokens ?? body.MaxTokens, maxField,
            defaultTemperature: 0f, logprobs: false, topLogprobs: 0, "top_logprobs", promptIds.Count, promptField, model, options)
            with { Constraint = ConstraintReader.FromNative(body) };
        var job = new GenerationJob(id, promptIds, sampling, stop,
            body.TimeoutMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null, maxField).For(models, model, body.KeepAlive);

        if (body.Stream == true)
        {
            await runner.StreamAsync(context, job, new NativeStream(id, model.Name));
            return;
        }
        var result = await runner.RunAsync(context, job);
        await Results.Json(Response(id, result.Text, result.Completed, result.Latency, model.Name), ApiJson.Options)
            .ExecuteAsync(context);
    }

    private static NativeQueryResponse Response(string id, string? text, QueryCompleted c, TimeSpan latency, string model) =>
        new(id, text, QueryRunner.FinishReasonText(c.FinishReason), UsageDto.Of(c),
            c.Cached, (long)latency.TotalMilliseconds, model, c.Worker);

    /// <summary><c>event: chunk</c> per text piece, then <c>event: done</c> with the reply minus its text.</summary>
    private sealed class NativeStream(string id, string model) : IStreamShape
    {
        public IEnumerable<SseItem<string>> Start() => [];

        public IEnumerable<SseItem<string>> Chunk(TokensGenerated tokens) =>
            tokens.Text.Length == 0 ? [] : [new SseItem<string>(JsonSerializer.Serialize(new NativeChunk(id, tokens.Text), ApiJson.Options), "chunk")];

        public IEnumerable<SseItem<string>> Final(QueryCompleted completed, TimeSpan latency) =>
            [new SseItem<string>(JsonSerializer.Serialize(Response(id, null, completed, latency, model), ApiJson.Options), "done")];

        public IEnumerable<SseItem<string>> Error(ApiException error) =>
            [new SseItem<string>(JsonSerializer.Serialize(new
            {
                type = $"https://httpwg.org/specs/rfc9110.html#status.{error.Status}",
                title = "Error", status = error.Status, detail = error.Message, request_id = id, code = error.Code,
            }, ApiJson.Options), "error")];
    }
}
