using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using ActorQuery.Actors;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Generation;
using ActorQuery.Contracts;
using ActorQuery.Tokenization;

namespace ActorQuery.Api.Endpoints;

/// <summary>OpenAI-compatible /v1/chat/completions, /v1/completions and /v1/models, in OpenAI's JSON shapes.</summary>
internal static class OpenAiEndpoints
{
    private const string Done = "[DONE]";

    public static async Task ChatCompletions(HttpContext context, QueryRunner runner, IServedModels models, ApiOptions options)
    {
        var body = await RequestReader.ReadAsync<ChatCompletionRequest>(context, options);
        var model = CheckModelAndN(body.Model, body.N, models);
        if (body.MaxTokens is not null && body.MaxCompletionTokens is not null)
            throw ApiException.BadRequest("max_completion_tokens", "give either max_tokens or max_completion_tokens, not both");
        if (body.TopLogprobs is not null && body.Logprobs != true)
            throw ApiException.BadRequest("top_logprobs", "needs logprobs: true");

        string maxField = body.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens";
        var stop = PromptBuilder.ParseStop(body.Stop, options.MaxStopStrings);
        var tools = ToolRequest.Read(body.Tools, body.ToolChoice, body.ParallelToolCalls, model.Tokenizer.ChatTemplateToolCallFormat);
        var responseFormat = ConstraintReader.FromResponseFormat(body.ResponseFormat);
        var toolConstraint = tools?.Constraint();
        if (toolConstraint is not null && responseFormat is not null)
            throw ApiException.BadRequest("tool_choice", "a required tool call and response_format cannot both constrain the output");
        var promptIds = PromptBuilder.EncodeChat(PromptBuilder.ParseMessages(body.Messages, options), model.Tokenizer, tools?.Tools);
        var sampling = PromptBuilder.BuildSampling(body, body.MaxCompletionTokens ?? body.MaxTokens, maxField, defaultTemperature: 1f,
            body.Logprobs == true, body.TopLogprobs ?? 0, "top_logprobs", promptIds.Count, "messages", model, options)
            with { Constraint = toolConstraint ?? responseFormat };
        bool parseCalls = tools?.ParsesCalls == true;
        string id = "chatcmpl-" + RequestIdMiddleware.Get(context);
        var job = new GenerationJob(RequestIdMiddleware.Get(context), promptIds, sampling, stop, null, maxField).For(models, model, body.KeepAlive);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        if (body.Stream == true)
        {
            await runner.StreamAsync(context, job,
                new ChatStream(id, created, model, body.StreamOptions?.IncludeUsage == true, sampling.Logprobs, parseCalls ? tools!.Streamer() : null));
            return;
        }
        var r = await runner.RunAsync(context, job);
        var logprobs = sampling.Logprobs ? ChatLogprobsOf(r.Logprobs, model.Tokenizer) : null;
        var message = new ChatMessageOut("assistant", r.Text);
        string finish = QueryRunner.FinishReasonText(r.Completed.FinishReason);
        if (parseCalls && tools!.Parse(r.Text) is { Calls.Count: > 0 } parsed)
        {
            message = new ChatMessageOut("assistant", parsed.Content, parsed.Calls);
            finish = "tool_calls";
        }
        var response = new ChatCompletionResponse(id, "chat.completion", created, model.Name,
            [new ChatChoice(0, message, logprobs, finish)],
            UsageDto.Of(r.Completed));
        await Results.Json(response, ApiJson.Options).ExecuteAsync(context);
    }

    public static async Task Completions(HttpContext context, QueryRunner runner, IServedModels models, ApiOptions options)
    {
        var body = await RequestReader.ReadAsync<CompletionRequest>(context, options);
        var model = CheckModelAndN(body.Model, body.N, models);
        if (body.Logprobs is < 0 or > 5) throw ApiException.BadRequest("logprobs", "must be in [0, 5]");
        if (body.Echo == true) throw ApiException.BadRequest("echo", "is not supported");

        var stop = PromptBuilder.ParseStop(body.Stop, options.MaxStopStrings);
        var promptIds = PromptBuilder.EncodeCompletionPrompt(body.Prompt, model.Tokenizer, options);
        var sampling = PromptBuilder.BuildSampling(body, body.MaxTokens, "max_tokens",
            defaultTemperature: 1f, body.Logprobs is not null, body.Logprobs ?? 0, "logprobs", promptIds.Count, "prompt", model, options)
            with { Constraint = ConstraintReader.FromResponseFormat(body.ResponseFormat) };
        string id = "cmpl-" + RequestIdMiddleware.Get(context);
        var job = new GenerationJob(RequestIdMiddleware.Get(context), promptIds, sampling, stop, null, "max_tokens").For(models, model, body.KeepAlive);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        if (body.Stream == true)
        {
            await runner.StreamAsync(context, job,
                new CompletionStream(id, created, model, body.StreamOptions?.IncludeUsage == true, sampling.Logprobs));
            return;
        }
        var r = await runner.RunAsync(context, job);
        var logprobs = sampling.Logprobs ? CompletionLogprobsOf(r.Logprobs, model.Tokenizer, 0) : null;
        var response = new CompletionResponse(id, "text_completion", created, model.Name,
            [new CompletionChoice(r.Text, 0, logprobs, QueryRunner.FinishReasonText(r.Completed.FinishReason))],
            UsageDto.Of(r.Completed));
        await Results.Json(response, ApiJson.Options).ExecuteAsync(context);
    }

    /// <summary>Only a served model may be named (see <see cref="ServedModelsExtensions.Resolve"/>).</summary>
    private static IServedModel CheckModelAndN(string? name, int? n, IServedModels models)
    {
        var model = models.Resolve(name);
        if (n is not null && n != 1)
            throw ApiException.BadRequest("n", "only n = 1 is supported (one sequence per request)");
        return model;
    }

    private static string TokenText(int id, ITokenizer tokenizer) => tokenizer.Decode([id], skipSpecialTokens: false);

    private static int[] Bytes(string s) => Encoding.UTF8.GetBytes(s).Select(b => (int)b).ToArray();

    private static ChatLogprobs ChatLogprobsOf(IEnumerable<TokenLogprob> logprobs, ITokenizer tokenizer) =>
        new(logprobs.Select(l =>
        {
            string token = TokenText(l.TokenId, tokenizer);
            return new ChatTokenLogprob(token, l.Logprob, Bytes(token),
                l.Top.Select(t => { string s = TokenText(t.TokenId, tokenizer); return new ChatTopLogprob(s, t.Logprob, Bytes(s)); }).ToList());
        }).ToList());

    private static CompletionLogprobs CompletionLogprobsOf(IReadOnlyList<TokenLogprob> logprobs, ITokenizer tokenizer, int textOffset)
    {
        var tokens = new List<string>();
        var offsets = new List<int>();
        var top = new List<Dictionary<string, float>>();
        int offset = textOffset;
        foreach (var l in logprobs)
        {
            string token = TokenText(l.TokenId, tokenizer);
            tokens.Add(token);
            offsets.Add(offset);
            offset += token.Length;
            var alternatives = new Dictionary<string, float>();
            foreach (var t in l.Top) alternatives.TryAdd(TokenText(t.TokenId, tokenizer), t.Logprob);
            top.Add(alternatives);
        }
        return new CompletionLogprobs(tokens, logprobs.Select(l => l.Logprob).ToList(), top, offsets);
    }

    private static SseItem<string> Data<T>(T value) => new(JsonSerializer.Serialize(value, ApiJson.Options));

    /// <summary>OpenAI's error object, sent in the stream when a query fails after it began (as vLLM does).</summary>
    private static IEnumerable<SseItem<string>> StreamError(ApiException e) =>
    [
        Data(new OpenAiErrorEnvelope(new OpenAiError(e.Message, ErrorWriter.OpenAiType(e.Status), e.Field, e.Code ?? ErrorWriter.DefaultCode(e.Status)))),
        new(Done),
    ];

    /// <param name="toolCalls">Reads tool calls out of the text when the request has tools; null: the text is content.</param>
    private sealed class ChatStream(string id, long created, IServedModel model, bool includeUsage, bool logprobs, IToolCallStreamer? toolCalls) : IStreamShape
    {
        private ChatCompletionChunk Chunk(ChatDelta delta, ChatLogprobs? lp, string? finish) =>
            new(id, "chat.completion.chunk", created, model.Name, [new ChatChunkChoice(0, delta, lp, finish)], null);

        public IEnumerable<SseItem<string>> Start() => [Data(Chunk(new ChatDelta("assistant", ""), null, null))];

        public IEnumerable<SseItem<string>> Chunk(TokensGenerated tokens)
        {
            if (tokens.Text.Length == 0 && !(logprobs && tokens.Logprobs is { Count: > 0 })) return [];
            var lp = logprobs && tokens.Logprobs is { } l ? ChatLogprobsOf(l, model.Tokenizer) : null;
            if (toolCalls is null) return [Data(Chunk(new ChatDelta(null, tokens.Text), lp, null))];
            // Held-back text carries no delta now; its logprobs ride on the first delta that goes out.
            var deltas = toolCalls.Push(tokens.Text);
            return deltas.Select((d, i) => Data(Chunk(d, i == 0 ? lp : null, null))).ToList();
        }

        public IEnumerable<SseItem<string>> Final(QueryCompleted c, TimeSpan latency)
        {
            var items = new List<SseItem<string>>();
            string finish = QueryRunner.FinishReasonText(c.FinishReason);
            if (toolCalls is not null)
            {
                items.AddRange(toolCalls.Finish().Select(d => Data(Chunk(d, null, null))));
                if (toolCalls.MadeCalls) finish = "tool_calls";
            }
            items.Add(Data(Chunk(new ChatDelta(null, null), null, finish)));
            if (includeUsage)
                items.Add(Data(new ChatCompletionChunk(id, "chat.completion.chunk", created, model.Name, [],
                    UsageDto.Of(c))));
            items.Add(new SseItem<string>(Done));
            return items;
        }

        public IEnumerable<SseItem<string>> Error(ApiException error) => StreamError(error);
    }

    private sealed class CompletionStream(string id, long created, IServedModel model, bool includeUsage, bool logprobs) : IStreamShape
    {
        private int _offset;

        private CompletionResponse Chunk(string text, CompletionLogprobs? lp, string? finish) =>
            new(id, "text_completion", created, model.Name, [new CompletionChoice(text, 0, lp, finish)], null);

        public IEnumerable<SseItem<string>> Start() => [];

        public IEnumerable<SseItem<string>> Chunk(TokensGenerated tokens)
        {
            if (tokens.Text.Length == 0 && !(logprobs && tokens.Logprobs is { Count: > 0 })) return [];
            var lp = logprobs && tokens.Logprobs is { } l ? CompletionLogprobsOf(l, model.Tokenizer, _offset) : null;
            _offset += tokens.Text.Length;
            return [Data(Chunk(tokens.Text, lp, null))];
        }

        public IEnumerable<SseItem<string>> Final(QueryCompleted c, TimeSpan latency)
        {
            var items = new List<SseItem<string>> { Data(Chunk("", null, QueryRunner.FinishReasonText(c.FinishReason))) };
            if (includeUsage)
                items.Add(Data(new CompletionResponse(id, "text_completion", created, model.Name, [],
                    UsageDto.Of(c))));
            items.Add(new SseItem<string>(Done));
            return items;
        }

        public IEnumerable<SseItem<string>> Error(ApiException error) => StreamError(error);
    }
}
