using System.Net.ServerSentEvents;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ActorQuery.Actors;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Generation;
using ActorQuery.Contracts;

namespace ActorQuery.Api.Endpoints;

/// <summary>
/// POST /v1/responses: OpenAI's Responses API over the chat completions pipeline, stateless (no store, no
/// previous_response_id). The input becomes chat messages rendered by the model's template, function tools and
/// <c>text.format</c> constrain the output as on /v1/chat/completions, and the answer comes back as output items: a
/// <c>message</c> with one <c>output_text</c> part, and a <c>function_call</c> item per call; streamed as the
/// Responses events (<c>response.created</c> … <c>response.completed</c>), each numbered by <c>sequence_number</c>.
/// </summary>
internal static class ResponsesEndpoints
{
    private static readonly JsonElement TextFormat = JsonSerializer.SerializeToElement(new { type = "text" });
    private static readonly JsonElement Auto = JsonSerializer.SerializeToElement("auto");
    private static readonly JsonElement NoMetadata = JsonSerializer.SerializeToElement(new { });

    public static async Task Create(HttpContext context, QueryRunner runner, IServedModels models, ApiOptions options)
    {
        var body = await RequestReader.ReadAsync<ResponsesRequest>(context, options);
        var model = models.Resolve(body.Model);
        ResponsesInput.CheckSupported(body);

        var stop = PromptBuilder.ParseStop(body.Stop, options.MaxStopStrings);
        var chatTools = ResponsesInput.ChatTools(body.Tools);
        var tools = ResponsesInput.Renamed(() => ToolRequest.Read(chatTools, ResponsesInput.ChatToolChoice(body.ToolChoice)), ".function.", ".");
        var format = ResponsesInput.Format(body.Text);
        var toolConstraint = ResponsesInput.Renamed(() => tools?.Constraint(), ".function.", ".");
        if (toolConstraint is not null && format is not null)
            throw ApiException.BadRequest("tool_choice", "a required tool call and text.format cannot both constrain the output");
        var messages = ResponsesInput.Renamed(() => PromptBuilder.ParseMessages(ResponsesInput.Messages(body.Instructions, body.Input), options), "messages", "input");
        var promptIds = ResponsesInput.Renamed(() => PromptBuilder.EncodeChat(messages, model.Tokenizer, tools?.Tools), "messages", "input");
        var sampling = PromptBuilder.BuildSampling(body, body.MaxOutputTokens, "max_output_tokens", defaultTemperature: 1f,
            logprobs: false, topLogprobs: 0, "top_logprobs", promptIds.Count, "input", model, options)
            with { Constraint = toolConstraint ?? format };
        bool parseCalls = tools?.ParsesCalls == true;
        string requestId = RequestIdMiddleware.Get(context);
        var job = new GenerationJob(requestId, promptIds, sampling, stop, null, "max_output_tokens").For(models, model, body.KeepAlive);
        var template = new ResponseTemplate(body, "resp_" + requestId, DateTimeOffset.UtcNow.ToUnixTimeSeconds(), model.Name);

        if (body.Stream == true)
        {
            await runner.StreamAsync(context, job, new ResponsesStream(template, parseCalls ? tools!.Streamer() : null));
            return;
        }
        var r = await runner.RunAsync(context, job);
        bool cut = r.Completed.FinishReason == FinishReason.Length;
        var output = new List<object>();
        var (content, calls) = parseCalls ? tools!.Parse(r.Text) : (r.Text, []);
        if (content is not null || calls.Count == 0)
            output.Add(Message(NewId("msg"), content ?? "", cut && calls.Count == 0 ? "incomplete" : "completed"));
        foreach (var c in calls)
            output.Add(new ResponseFunctionCallItem("function_call", NewId("fc"), c.Id, c.Function.Name, c.Function.Arguments, "completed"));
        await Results.Json(template.Ended(cut, output, r.Completed), ApiJson.Options).ExecuteAsync(context);
    }

    private static ResponseMessageItem Message(string id, string text, string status) =>
        new("message", id, status, "assistant", [OutputText(text)]);

    private static ResponseOutputText OutputText(string text) => new("output_text", text, [], []);

    private static string NewId(string prefix) => prefix + "_" + RandomNumberGenerator.GetHexString(32, lowercase: true);

    /// <summary>What every response object of one request shares: its id and the request's settings, echoed.</summary>
    private sealed class ResponseTemplate(ResponsesRequest body, string id, long createdAt, string model)
    {
        public ResponseObject With(string status, IReadOnlyList<object> output, ResponseUsage? usage,
            ResponseIncompleteDetails? incomplete = null, ResponseErrorOut? error = null) =>
            new(id, "response", createdAt, status, error, incomplete, body.Instructions, body.MaxOutputTokens, model, output,
                body.ParallelToolCalls ?? true, null, new ResponseReasoningOut(null, null), false, body.Temperature ?? 1f,
                new ResponseTextOut(body.Text?.Format is { ValueKind: JsonValueKind.Object } f ? f : TextFormat),
                body.ToolChoice is { ValueKind: not JsonValueKind.Null } choice ? choice : Auto, body.Tools ?? [], body.TopP ?? 1f,
                "disabled", usage, body.User, body.Metadata is { ValueKind: JsonValueKind.Object } m ? m : NoMetadata);

        /// <summary>The finished response: completed, or incomplete when max_output_tokens cut it.</summary>
        public ResponseObject Ended(bool cut, IReadOnlyList<object> output, QueryCompleted c) =>
            With(cut ? "incomplete" : "completed", output, ResponseUsage.Of(c.PromptTokens, c.CompletionTokens, c.CachedPromptTokens),
                cut ? new ResponseIncompleteDetails("max_output_tokens") : null);
    }

    /// <summary>
    /// The Responses events of one streamed answer. Text opens a message item (output_item.added, content_part.added)
    /// and goes out as output_text.delta; with tools the text is read by the model's <see cref="IToolCallStreamer"/>, and each call
    /// becomes a function_call item whose arguments go out as function_call_arguments.delta. Items close (…done) when
    /// the next begins or the answer ends; response.completed (or response.incomplete) carries them all and the usage.
    /// </summary>
    private sealed class ResponsesStream(ResponseTemplate template, IToolCallStreamer? toolCalls) : IStreamShape
    {
        private readonly IToolCallStreamer? _toolCalls = toolCalls;
        private readonly List<object> _output = new();
        private int _sequence;
        // The item being written: a message and its text, or a call and its arguments.
        private string? _messageId;
        private readonly StringBuilder _text = new();
        private ResponseFunctionCallItem? _call;
        private readonly StringBuilder _arguments = new();
        private bool _madeCalls;

        private SseItem<string> Event<T>(T value, string type) => new(JsonSerializer.Serialize(value, ApiJson.Options), type);

        private int Next() => _sequence++;

        public IEnumerable<SseItem<string>> Start() =>
        [
            Event(new ResponseLifecycleEvent("response.created", Next(), template.With("in_progress", [], null)), "response.created"),
            Event(new ResponseLifecycleEvent("response.in_progress", Next(), template.With("in_progress", [], null)), "response.in_progress"),
        ];

        public IEnumerable<SseItem<string>> Chunk(TokensGenerated tokens)
        {
            var items = new List<SseItem<string>>();
            if (_toolCalls is null) Text(tokens.Text, items);
            else foreach (var d in _toolCalls.Push(tokens.Text)) Delta(d, items);
            return items;
        }

        public IEnumerable<SseItem<string>> Final(QueryCompleted c, TimeSpan latency)
        {
            var items = new List<SseItem<string>>();
            if (_toolCalls is not null) foreach (var d in _toolCalls.Finish()) Delta(d, items);
            bool cut = c.FinishReason == FinishReason.Length;
            if (_output.Count == 0 && _messageId is null && _call is null) OpenMessage(items);
            CloseMessage(items, cut && !_madeCalls ? "incomplete" : "completed");
            CloseCall(items);
            var response = template.Ended(cut, _output.ToList(), c);
            string type = cut ? "response.incomplete" : "response.completed";
            items.Add(Event(new ResponseLifecycleEvent(type, Next(), response), type));
            return items;
        }

        public IEnumerable<SseItem<string>> Error(ApiException error)
        {
            string code = error.Code ?? ErrorWriter.DefaultCode(error.Status);
            return
            [
                Event(new ResponseErrorEvent("error", Next(), code, error.Message, error.Field), "error"),
                Event(new ResponseLifecycleEvent("response.failed", Next(),
                    template.With("failed", _output.ToList(), null, error: new ResponseErrorOut(code, error.Message))), "response.failed"),
            ];
        }

        private void Delta(ChatDelta d, List<SseItem<string>> items)
        {
            if (d.Content is { Length: > 0 } text) Text(text, items);
            foreach (var call in d.ToolCalls ?? [])
            {
                if (call.Id is not null)
                {
                    CloseMessage(items, "completed");
                    CloseCall(items);
                    _madeCalls = true;
                    _call = new ResponseFunctionCallItem("function_call", NewId("fc"), call.Id, call.Function.Name ?? "", "", "in_progress");
                    items.Add(Event(new ResponseOutputItemEvent("response.output_item.added", Next(), _output.Count, _call), "response.output_item.added"));
                }
                if (_call is null || call.Function.Arguments.Length == 0) continue;
                _arguments.Append(call.Function.Arguments);
                items.Add(Event(new ResponseArgumentsDeltaEvent("response.function_call_arguments.delta", Next(), _call.Id, _output.Count,
                    call.Function.Arguments), "response.function_call_arguments.delta"));
            }
        }

        private void Text(string text, List<SseItem<string>> items)
        {
            if (text.Length == 0) return;
            if (_messageId is null) OpenMessage(items);
            _text.Append(text);
            items.Add(Event(new ResponseTextDeltaEvent("response.output_text.delta", Next(), _messageId!, _output.Count, 0, text, []),
                "response.output_text.delta"));
        }

        private void OpenMessage(List<SseItem<string>> items)
        {
            _messageId = NewId("msg");
            _text.Clear();
            items.Add(Event(new ResponseOutputItemEvent("response.output_item.added", Next(), _output.Count,
                new ResponseMessageItem("message", _messageId, "in_progress", "assistant", [])), "response.output_item.added"));
            items.Add(Event(new ResponseContentPartEvent("response.content_part.added", Next(), _messageId, _output.Count, 0, OutputText("")),
                "response.content_part.added"));
        }

        private void CloseMessage(List<SseItem<string>> items, string status)
        {
            if (_messageId is not { } id) return;
            string text = _text.ToString();
            int index = _output.Count;
            items.Add(Event(new ResponseTextDoneEvent("response.output_text.done", Next(), id, index, 0, text, []), "response.output_text.done"));
            items.Add(Event(new ResponseContentPartEvent("response.content_part.done", Next(), id, index, 0, OutputText(text)), "response.content_part.done"));
            var item = Message(id, text, status);
            items.Add(Event(new ResponseOutputItemEvent("response.output_item.done", Next(), index, item), "response.output_item.done"));
            _output.Add(item);
            _messageId = null;
        }

        private void CloseCall(List<SseItem<string>> items)
        {
            if (_call is not { } call) return;
            string arguments = _arguments.ToString();
            int index = _output.Count;
            items.Add(Event(new ResponseArgumentsDoneEvent("response.function_call_arguments.done", Next(), call.Id, index, call.Name, arguments),
                "response.function_call_arguments.done"));
            var item = call with { Arguments = arguments, Status = "completed" };
            items.Add(Event(new ResponseOutputItemEvent("response.output_item.done", Next(), index, item), "response.output_item.done"));
            _output.Add(item);
            _call = null;
            _arguments.Clear();
        }
    }
}
