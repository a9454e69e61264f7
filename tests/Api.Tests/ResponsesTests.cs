#pragma warning disable OPENAI001 // the Responses client is marked experimental in the library
using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;
using ActorQuery.TestSupport;
using ActorQuery.Tokenization;
using OpenAI;
using OpenAI.Responses;

namespace ActorQuery.Api.Tests;

/// <summary>
/// POST /v1/responses through the official OpenAI .NET client and plain HTTP, over the fake engine that answers with
/// the prompt's bytes. The template here renders the history compactly and the last message as is, so a test sees how
/// the input items reached the model, or writes the model's output as the last message.
/// </summary>
public sealed class ResponsesTests : IAsyncLifetime
{
    private sealed class HistoryTokenizer : ITokenizer
    {
        private readonly ByteTokenizer _bytes = new();
        private readonly ChatTemplate _template = new(
            "{%- for m in messages %}{% if loop.last %}" +
            "{%- if tools and not loop.first %}{% for t in tools %}[tool {{ t.function.name }}]{% endfor %}{% endif %}{{ m.content }}{% else %}<{{ m.role }}>{{ m.content }}" +
            "{%- if m.tool_calls %}{% for c in m.tool_calls %}[call {{ c.id }} {{ c.function.name }} {{ c.function.arguments | tojson }}]{% endfor %}{% endif %}" +
            "{%- if m.tool_call_id %}[for {{ m.tool_call_id }}]{% endif %}|{% endif %}{% endfor %}",
            new Dictionary<string, string?>());
        public int VocabSize => _bytes.VocabSize;
        public bool HasChatTemplate => true;
        public bool ChatTemplateSupportsTools => true;
        public IReadOnlyList<int> EndOfTurnTokenIds => _bytes.EndOfTurnTokenIds;
        public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false) => _bytes.Encode(text, addSpecialTokens);
        public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) => _bytes.Decode(ids, skipSpecialTokens);
        public IStreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = true) => _bytes.CreateStreamingDetokenizer(skipSpecialTokens);
        public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) => _template.Render(messages, addGenerationPrompt);
        public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<JsonElement>? tools) =>
            _template.Render(messages, addGenerationPrompt, tools);
    }

    private ApiServer _server = null!;

    public async Task InitializeAsync() => _server = await ApiServer.StartAsync(tokenizer: new HistoryTokenizer());

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private ResponsesClient Client() => new(new ApiKeyCredential("not-checked"),
        new ResponsesClientOptions { Endpoint = new Uri(_server.BaseAddress, "v1"), NetworkTimeout = TimeSpan.FromSeconds(30) });

    private const string AddTool = """
        {"type": "function", "name": "add", "description": "Adds two integers.", "strict": true,
         "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"], "additionalProperties": false}}
        """;

    private async Task<JsonElement> Post(string body, HttpStatusCode expected = HttpStatusCode.OK)
    {
        var r = await Json.PostAsync(_server.Http, "/v1/responses", body);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == expected, $"{(int)r.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Fact]
    public async Task The_openai_client_gets_the_answer_as_a_message_with_output_text_and_usage()
    {
        var options = new CreateResponseOptions(ApiServer.ModelName, [ResponseItem.CreateUserMessageItem("What is 2 + 2?")])
        {
            Instructions = "Be brief.", MaxOutputTokenCount = 100, Temperature = 0f,
        };
        ResponseResult response = (await Client().CreateResponseAsync(options)).Value;

        Assert.Equal("<system>Be brief.|What is 2 + 2?", response.GetOutputText());
        Assert.Equal(ResponseStatus.Completed, response.Status);
        Assert.StartsWith("resp_", response.Id);
        var message = Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(response.OutputItems));
        Assert.Equal(MessageRole.Assistant, message.Role);
        Assert.Equal(response.GetOutputText().Length, response.Usage.OutputTokenCount);
        Assert.Equal(response.GetOutputText().Length, response.Usage.InputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
        var sent = _server.Fake.LastRequest!;
        Assert.Equal(0f, sent.Sampling.Temperature);
        Assert.Equal(100, sent.Sampling.MaxNewTokens);
    }

    [Fact]
    public async Task Streamed_deltas_through_the_openai_client_assemble_to_the_answer_that_is_not_streamed()
    {
        var client = Client();
        var options = new CreateResponseOptions(ApiServer.ModelName, [ResponseItem.CreateUserMessageItem("Count: 1 2 3")])
            { MaxOutputTokenCount = 100, Temperature = 0f };
        string whole = (await client.CreateResponseAsync(options)).Value.GetOutputText();

        var deltas = new StringBuilder();
        var kinds = new List<string>();
        ResponseResult? completed = null;
        options.StreamingEnabled = true;
        await foreach (var update in await client.CreateResponseStreamingAsync(options))
        {
            kinds.Add(update.GetType().Name);
            if (update is StreamingResponseOutputTextDeltaUpdate d) deltas.Append(d.Delta);
            if (update is StreamingResponseCompletedUpdate c) completed = c.Response;
        }
        Assert.Equal(whole, deltas.ToString());
        Assert.Equal("Count: 1 2 3", whole);
        Assert.Equal(nameof(StreamingResponseCreatedUpdate), kinds[0]);
        Assert.Equal(nameof(StreamingResponseInProgressUpdate), kinds[1]);
        Assert.Equal(nameof(StreamingResponseCompletedUpdate), kinds[^1]);
        Assert.Contains(nameof(StreamingResponseOutputItemAddedUpdate), kinds);
        Assert.Contains(nameof(StreamingResponseContentPartAddedUpdate), kinds);
        Assert.Contains(nameof(StreamingResponseOutputTextDoneUpdate), kinds);
        Assert.Contains(nameof(StreamingResponseOutputItemDoneUpdate), kinds);
        Assert.NotNull(completed);
        Assert.Equal(whole, completed!.GetOutputText());
        Assert.Equal(whole.Length, completed.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task Every_streamed_event_names_its_type_and_counts_up_from_sequence_number_zero()
    {
        var r = await Json.PostAsync(_server.Http, "/v1/responses", """{"input": "hi", "stream": true}""");
        var events = Sse.Parse(await r.Content.ReadAsStringAsync());
        for (int i = 0; i < events.Count; i++)
        {
            var data = JsonDocument.Parse(events[i].Data).RootElement;
            Assert.Equal(events[i].Event, data.GetProperty("type").GetString());
            Assert.Equal(i, data.GetProperty("sequence_number").GetInt32());
        }
        Assert.Equal(["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
                      "response.output_text.delta", "response.output_text.delta", "response.output_text.done", "response.content_part.done",
                      "response.output_item.done", "response.completed"], events.Select(e => e.Event));
    }

    [Fact]
    public async Task A_tool_call_comes_back_as_a_function_call_item_streamed_and_not()
    {
        string output = "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call>";
        string body = $$"""{"input": {{JsonSerializer.Serialize(output)}}, "tools": [{{AddTool}}], "max_output_tokens": 300}""";
        var response = await Post(body);
        var call = Assert.Single(response.GetProperty("output").EnumerateArray());
        Assert.Equal("function_call", call.GetProperty("type").GetString());
        Assert.Equal("add", call.GetProperty("name").GetString());
        Assert.Equal("""{"a": 2, "b": 3}""", call.GetProperty("arguments").GetString());
        Assert.StartsWith("call_", call.GetProperty("call_id").GetString());
        Assert.Equal("completed", response.GetProperty("status").GetString());

        var client = Client();
        var options = new CreateResponseOptions(ApiServer.ModelName, [ResponseItem.CreateUserMessageItem(output)])
        {
            MaxOutputTokenCount = 300, StreamingEnabled = true,
            Tools = { ResponseTool.CreateFunctionTool("add", BinaryData.FromString("""{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}"""), null) },
        };
        var arguments = new StringBuilder();
        FunctionCallResponseItem? done = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(options))
        {
            if (update is StreamingResponseFunctionCallArgumentsDeltaUpdate d) arguments.Append(d.Delta.ToString());
            if (update is StreamingResponseOutputItemDoneUpdate { Item: FunctionCallResponseItem f }) done = f;
        }
        Assert.NotNull(done);
        Assert.Equal("add", done!.FunctionName);
        Assert.Equal("""{"a": 2, "b": 3}""", arguments.ToString());
        Assert.Equal(arguments.ToString(), done.FunctionArguments.ToString());
    }

    [Fact]
    public async Task Function_call_and_output_items_reach_the_template_as_an_assistant_call_and_a_tool_result()
    {
        var response = await Post($$"""
            {"input": [
              {"role": "developer", "content": "Use tools."},
              {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "2+3?"}]},
              {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": "{\"a\": 2, \"b\": 3}"},
              {"type": "function_call_output", "call_id": "call_1", "output": "5"},
              {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is 5."}]},
              {"role": "user", "content": "."}],
             "tools": [{{AddTool}}], "tool_choice": "none", "max_output_tokens": 300}
            """);
        string text = response.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString()!;
        Assert.Equal("""<system>Use tools.|<user>2+3?|<assistant>[call call_1 add {"a": 2, "b": 3}]|<tool>5[for call_1]|<assistant>It is 5.|[tool add].""", text);
    }

    [Fact]
    public async Task Text_format_json_schema_holds_the_output_to_the_schema()
    {
        await Post("""
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "answer", "strict": true,
              "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}}}
            """);
        var c = _server.Fake.LastRequest!.Sampling.Constraint!;
        Assert.Equal(ActorQuery.Tokenization.Grammar.ConstraintKind.JsonSchema, c.Kind);
        Assert.Contains("\"answer\"", c.Source);
        await Post("""{"input": "x", "text": {"format": {"type": "json_object"}}}""");
        Assert.Equal(ActorQuery.Tokenization.Grammar.OutputConstraint.JsonObject, _server.Fake.LastRequest!.Sampling.Constraint);
    }

    [Fact]
    public async Task Settings_and_metadata_are_echoed_and_a_cut_answer_is_incomplete()
    {
        var response = await Post("""{"input": "a long prompt", "max_output_tokens": 3, "metadata": {"run": "7"}, "top_p": 0.5, "instructions": "sys"}""");
        Assert.Equal("incomplete", response.GetProperty("status").GetString());
        Assert.Equal("max_output_tokens", response.GetProperty("incomplete_details").GetProperty("reason").GetString());
        Assert.Equal("7", response.GetProperty("metadata").GetProperty("run").GetString());
        Assert.Equal(3, response.GetProperty("max_output_tokens").GetInt32());
        Assert.Equal(0.5, response.GetProperty("top_p").GetDouble(), 3);
        Assert.Equal("sys", response.GetProperty("instructions").GetString());
        Assert.False(response.GetProperty("store").GetBoolean());
        Assert.Equal("text", response.GetProperty("text").GetProperty("format").GetProperty("type").GetString());
        Assert.Equal("<sy", response.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString());
    }

    [Theory]
    [InlineData("""{"input": "x", "store": true}""", "store", "stateless")]
    [InlineData("""{"input": "x", "previous_response_id": "resp_1"}""", "previous_response_id", "keeps no responses")]
    [InlineData("""{"input": "x", "background": true}""", "background", "not supported")]
    [InlineData("""{"input": "x", "tools": [{"type": "web_search"}]}""", "tools[0].type", "only function tools")]
    [InlineData("""{"input": "x", "tools": [{"type": "function", "name": "bad name"}]}""", "tools[0].name", "a-z")]
    [InlineData("""{"input": "x", "tool_choice": {"type": "file_search"}, "tools": [{"type": "function", "name": "f"}]}""", "tool_choice", "must be")]
    [InlineData("""{"input": [{"type": "reasoning", "summary": []}]}""", "input[0].type", "'reasoning' is not supported")]
    [InlineData("""{"input": [{"role": "tool", "content": "x"}]}""", "input[0].role", "'tool'")]
    [InlineData("""{"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}""", "input[0].content[0].type", "input_image")]
    [InlineData("""{"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}]}""", "input[0].arguments", "not valid JSON")]
    [InlineData("""{"input": "x", "text": {"format": {"type": "json_schema", "name": "a"}}}""", "text.format.schema", "required")]
    [InlineData("""{"input": "x", "text": {"format": {"type": "yaml"}}}""", "text.format.type", "yaml")]
    [InlineData("""{"input": "x", "max_output_tokens": 0}""", "max_output_tokens", ">= 1")]
    [InlineData("""{"max_output_tokens": 5}""", "input", "required")]
    [InlineData("""{"input": "x", "reasoning": {"effort": "high"}}""", "reasoning", "do not reason")]
    public async Task What_the_server_cannot_do_is_a_400_naming_the_field(string body, string field, string says)
    {
        var error = (await Post(body, HttpStatusCode.BadRequest)).GetProperty("error");
        Assert.Equal(field, error.GetProperty("param").GetString());
        Assert.Contains(says, error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Store_false_is_accepted_and_said_back()
    {
        var response = await Post("""{"input": "x", "store": false}""");
        Assert.False(response.GetProperty("store").GetBoolean());
    }
}
