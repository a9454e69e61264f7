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
        var model = models.Resolve(body.Model);
        int n = Choices.ReadN(body.N, prompts: 1);
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
        var jobs = Choices.FanOut([job], n);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        if (body.Stream == true)
        {
            await runner.StreamAllAsync(context, jobs,
                new ChatStream(id, created, model, n, body.StreamOptions?.IncludeUsage == true, sampling.Logprobs, parseCalls ? tools!.Streamer : null));
            return;
        }
        var results = await runner.RunAllAsync(context, jobs);
        var choices = results.Select((r, i) =>
        {
            var logprobs = sampling.Logprobs ? ChatLogprobsOf(r.Logprobs, model.Tokenizer) : null;
            var message = new ChatMessageOut("assistant", r.Text);
            string finish = QueryRunner.FinishReasonText(r.Completed.FinishReason);
            if (parseCalls && tools!.Parse(r.Text) is { Calls.Count: > 0 } parsed)
            {
                message = new ChatMessageOut("assistant", parsed.Content, parsed.Calls);
                finish = "tool_calls";
            }
            return new ChatChoice(i, message, logprobs, finish);
        }).ToList();
        var response = new ChatCompletionResponse(id, "chat.completion", created, model.Name, choices,
            Choices.Usage(results.Select(r => r.Completed).ToList(), n));
        await Results.Json(response, ApiJson.Options).ExecuteAsync(context);
    }

    public static async Task Completions(HttpContext context, QueryRunner runner, IServedModels models, ApiOptions options)
    {
        var body = await RequestReader.ReadAsync<CompletionRequest>(context, options);
        var model = models.Resolve(body.Model);
        if (body.Logprobs is < 0 or > 5) throw ApiException.BadRequest("logprobs", "must be in [0, 5]");
        bool echo = body.Echo == true;
        // OpenAI gives an echoed prompt's own log-probabilities; this engine does not score prompt tokens.
        if (echo && body.Logprobs is not null)
            throw ApiException.BadRequest("echo", "cannot be combined with logprobs: the server does not compute the prompt tokens' log-probabilities");

        var stop = PromptBuilder.ParseStop(body.Stop, options.MaxStopStrings);
        var prompts = PromptBuilder.EncodeCompletionPrompts(body.Prompt, model.Tokenizer, options);
        int n = Choices.ReadN(body.N, prompts.Count);
        var constraint = ConstraintReader.FromResponseFormat(body.ResponseFormat);
        string requestId = RequestIdMiddleware.Get(context);
        var perPrompt = prompts.Select((prompt, p) =>
        {
            var sampling = PromptBuilder.BuildSampling(body, body.MaxTokens, "max_tokens", defaultTemperature: 1f,
                body.Logprobs is not null, body.Logprobs ?? 0, "logprobs", prompt.Ids.Count, prompts.Count == 1 ? "prompt" : $"prompt[{p}]", model, options)
                with { Constraint = constraint };
            return new GenerationJob(requestId, prompt.Ids, sampling, stop, null, "max_tokens")
                .For(models, model, body.KeepAlive);
        }).ToList();
        var jobs = Choices.FanOut(perPrompt, n);
        // Choice i answers prompt i / n; echo puts that prompt's text in front of its text.
        var echoes = jobs.Select((_, i) => echo ? prompts[i / n].Text : "").ToList();
        bool logprobs = body.Logprobs is not null;
        string id = "cmpl-" + requestId;
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        if (body.Stream == true)
        {
            await runner.StreamAllAsync(context, jobs,
                new CompletionStream(id, created, model, n, echoes, body.StreamOptions?.IncludeUsage == true, logprobs));
            return;
        }
        var results = await runner.RunAllAsync(context, jobs);
        var choices = results.Select((r, i) => new CompletionChoice(echoes[i] + r.Text, i,
            logprobs ? CompletionLogprobsOf(r.Logprobs, model.Tokenizer, 0) : null, QueryRunner.FinishReasonText(r.Completed.FinishReason))).ToList();
        var response = new CompletionResponse(id, "text_completion", created, model.Name, choices,
            Choices.Usage(results.Select(r => r.Completed).ToList(), n));
        await Results.Json(response, ApiJson.Options).ExecuteAsync(context);
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

    /// <param name="toolCalls">Makes each choice's reader of tool calls out of its text when the request has tools; null: the
    /// text is content.</param>
    private sealed class ChatStream(string id, long created, IServedModel model, int n, bool includeUsage, bool logprobs, Func<IToolCallStreamer>? toolCalls)
        : IChoicesStreamShape
    {
        private readonly IToolCallStreamer?[] _toolCalls = Enumerable.Range(0, n).Select(_ => toolCalls?.Invoke()).ToArray();

        private ChatCompletionChunk Chunk(int choice, ChatDelta delta, ChatLogprobs? lp, string? finish) =>
            new(id, "chat.completion.chunk", created, model.Name, [new ChatChunkChoice(choice, delta, lp, finish)], null);

        public IEnumerable<SseItem<string>> Start() =>
            Enumerable.Range(0, n).Select(i => Data(Chunk(i, new ChatDelta("assistant", ""), null, null))).ToList();

        public IEnumerable<SseItem<string>> Chunk(int choice, TokensGenerated tokens)
        {
            if (tokens.Text.Length == 0 && !(logprobs && tokens.Logprobs is { Count: > 0 })) return [];
            var lp = logprobs && tokens.Logprobs is { } l ? ChatLogprobsOf(l, model.Tokenizer) : null;
            if (_toolCalls[choice] is not { } toolCalls) return [Data(Chunk(choice, new ChatDelta(null, tokens.Text), lp, null))];
            // Held-back text carries no delta now; its logprobs ride on the first delta that goes out.
            var deltas = toolCalls.Push(tokens.Text);
            return deltas.Select((d, i) => Data(Chunk(choice, d, i == 0 ? lp : null, null))).ToList();
        }

        public IEnumerable<SseItem<string>> ChoiceDone(int choice, QueryCompleted c)
        {
            var items = new List<SseItem<string>>();
            string finish = QueryRunner.FinishReasonText(c.FinishReason);
            if (_toolCalls[choice] is { } toolCalls)
            {
                items.AddRange(toolCalls.Finish().Select(d => Data(Chunk(choice, d, null, null))));
                if (toolCalls.MadeCalls) finish = "tool_calls";
            }
            items.Add(Data(Chunk(choice, new ChatDelta(null, null), null, finish)));
            return items;
        }

        public IEnumerable<SseItem<string>> Final(IReadOnlyList<QueryCompleted> completed, TimeSpan latency)
        {
            var items = new List<SseItem<string>>();
            if (includeUsage)
                items.Add(Data(new ChatCompletionChunk(id, "chat.completion.chunk", created, model.Name, [], Choices.Usage(completed, n))));
            items.Add(new SseItem<string>(Done));
            return items;
        }

        public IEnumerable<SseItem<string>> Error(ApiException error) => StreamError(error);
    }

    /// <param name="echoes">Per choice, the prompt text that goes out before its completion (empty without echo).</param>
    private sealed class CompletionStream(string id, long created, IServedModel model, int n, IReadOnlyList<string> echoes,
        bool includeUsage, bool logprobs) : IChoicesStreamShape
    {
        private readonly int[] _offsets = new int[echoes.Count];

        private CompletionResponse Chunk(int choice, string text, CompletionLogprobs? lp, string? finish) =>
            new(id, "text_completion", created, model.Name, [new CompletionChoice(text, choice, lp, finish)], null);

        public IEnumerable<SseItem<string>> Start() =>
            echoes.Select((e, i) => (e, i)).Where(x => x.e.Length > 0).Select(x => Data(Chunk(x.i, x.e, null, null))).ToList();

        public IEnumerable<SseItem<string>> Chunk(int choice, TokensGenerated tokens)
        {
            if (tokens.Text.Length == 0 && !(logprobs && tokens.Logprobs is { Count: > 0 })) return [];
            var lp = logprobs && tokens.Logprobs is { } l ? CompletionLogprobsOf(l, model.Tokenizer, _offsets[choice]) : null;
            _offsets[choice] += tokens.Text.Length;
            return [Data(Chunk(choice, tokens.Text, lp, null))];
        }

        public IEnumerable<SseItem<string>> ChoiceDone(int choice, QueryCompleted c) =>
            [Data(Chunk(choice, "", null, QueryRunner.FinishReasonText(c.FinishReason)))];

        public IEnumerable<SseItem<string>> Final(IReadOnlyList<QueryCompleted> completed, TimeSpan latency)
        {
            var items = new List<SseItem<string>>();
            if (includeUsage)
                items.Add(Data(new CompletionResponse(id, "text_completion", created, model.Name, [], Choices.Usage(completed, n))));
            items.Add(new SseItem<string>(Done));
            return items;
        }

        public IEnumerable<SseItem<string>> Error(ApiException error) => StreamError(error);
    }
}
