using System.Net;
using System.Text;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;
using ActorQuery.TestSupport;
using ActorQuery.Tokenization;
using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Api.Tests;

/// <summary>
/// tools and tool_choice on /v1/chat/completions over the fake engine, which answers with the prompt's bytes: the
/// template here renders only the last message, so a test writes the model's output as that message and sees how the
/// API turns it into OpenAI tool calls, streamed and not.
/// </summary>
public sealed class ToolCallTests : IAsyncLifetime
{
    /// <summary>Bytes in and out, with a template that reads tools and renders the last message as is (or as given).</summary>
    internal sealed class ToolsTokenizer(string template = "{%- if tools %}{% endif %}{{ messages[-1].content }}") : ITokenizer
    {
        private readonly ByteTokenizer _bytes = new();
        private readonly ChatTemplate _template = new(template, new Dictionary<string, string?>());
        public int VocabSize => _bytes.VocabSize;
        public bool HasChatTemplate => true;
        public bool ChatTemplateSupportsTools => true;
        public ToolCallFormat ChatTemplateToolCallFormat => _template.ToolCallFormat;
        public IReadOnlyList<int> EndOfTurnTokenIds => _bytes.EndOfTurnTokenIds;
        public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false) => _bytes.Encode(text, addSpecialTokens);
        public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) => _bytes.Decode(ids, skipSpecialTokens);
        public IStreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = true) => _bytes.CreateStreamingDetokenizer(skipSpecialTokens);
        public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) => _template.Render(messages, addGenerationPrompt);
        public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<JsonElement>? tools) =>
            _template.Render(messages, addGenerationPrompt, tools);
    }

    private ApiServer _server = null!;

    public async Task InitializeAsync() => _server = await ApiServer.StartAsync(tokenizer: new ToolsTokenizer());

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private const string Tools = """
        [{"type": "function", "function": {"name": "add", "description": "Adds two integers.",
          "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}},
         {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]
        """;

    private const string TwoCalls = "Let me see.\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": [2, \"}\"]}}\n</tool_call>\n" +
                                    "<tool_call>\n{\"arguments\": {}, \"name\": \"now\"}\n</tool_call>";

    private static string Request(string modelOutput, string extra = "") =>
        $$"""{"messages": [{"role": "user", "content": {{JsonSerializer.Serialize(modelOutput)}}}], "tools": {{Tools}}{{extra}}, "max_tokens": 300}""";

    private async Task<JsonElement> Post(string body, HttpStatusCode expected = HttpStatusCode.OK)
    {
        var r = await Json.PostAsync(_server.Http, "/v1/chat/completions", body);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == expected, $"{(int)r.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private Task<(string Content, List<(string Id, string Name, string Arguments)> Calls, string Finish, List<JsonElement> Deltas)> Stream(string body) =>
        StreamAsync(_server.Http, body);

    /// <summary>The streamed deltas joined: content, and each call's id, name and arguments by index.</summary>
    internal static async Task<(string Content, List<(string Id, string Name, string Arguments)> Calls, string Finish, List<JsonElement> Deltas)> StreamAsync(
        HttpClient http, string body)
    {
        var r = await Json.PostAsync(http, "/v1/chat/completions", body[..^1] + ", \"stream\": true}");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var deltas = Sse.Parse(await r.Content.ReadAsStringAsync()).Where(e => e.Data != "[DONE]")
            .Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("choices")[0].Clone()).ToList();
        var content = new StringBuilder();
        var calls = new List<(string Id, string Name, string Arguments)>();
        foreach (var d in deltas.Select(c => c.GetProperty("delta")))
        {
            if (d.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) content.Append(c.GetString());
            if (!d.TryGetProperty("tool_calls", out var tc)) continue;
            foreach (var call in tc.EnumerateArray())
            {
                int index = call.GetProperty("index").GetInt32();
                var f = call.GetProperty("function");
                if (index == calls.Count)
                {
                    Assert.Equal("function", call.GetProperty("type").GetString());
                    Assert.Equal("", f.GetProperty("arguments").GetString());
                    calls.Add((call.GetProperty("id").GetString()!, f.GetProperty("name").GetString()!, ""));
                }
                else
                {
                    Assert.False(call.TryGetProperty("id", out _));
                    calls[index] = calls[index] with { Arguments = calls[index].Arguments + f.GetProperty("arguments").GetString() };
                }
            }
        }
        return (content.ToString(), calls, deltas[^1].GetProperty("finish_reason").GetString()!, deltas);
    }

    [Fact]
    public async Task Tool_calls_in_the_output_become_openai_tool_calls_with_the_text_before_them_as_content()
    {
        var choice = (await Post(Request(TwoCalls))).GetProperty("choices")[0];

        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal("Let me see.", message.GetProperty("content").GetString());
        var calls = message.GetProperty("tool_calls").EnumerateArray().ToList();
        Assert.Equal(2, calls.Count);
        Assert.StartsWith("call_", calls[0].GetProperty("id").GetString());
        Assert.NotEqual(calls[0].GetProperty("id").GetString(), calls[1].GetProperty("id").GetString());
        Assert.Equal("function", calls[0].GetProperty("type").GetString());
        Assert.Equal("add", calls[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("{\"a\": 1, \"b\": [2, \"}\"]}", calls[0].GetProperty("function").GetProperty("arguments").GetString());
        Assert.Equal("now", calls[1].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("{}", calls[1].GetProperty("function").GetProperty("arguments").GetString());
    }

    [Fact]
    public async Task A_call_alone_has_null_content()
    {
        var message = (await Post(Request("<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"))).GetProperty("choices")[0].GetProperty("message");
        Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
        Assert.Single(message.GetProperty("tool_calls").EnumerateArray());
    }

    [Fact]
    public async Task Streamed_deltas_assemble_to_the_same_calls_and_no_tag_leaks_into_the_content()
    {
        var whole = (await Post(Request(TwoCalls))).GetProperty("choices")[0].GetProperty("message");
        var streamed = await Stream(Request(TwoCalls));

        Assert.Equal("tool_calls", streamed.Finish);
        Assert.Equal(whole.GetProperty("content").GetString(), streamed.Content);
        var expected = whole.GetProperty("tool_calls").EnumerateArray()
            .Select(c => (c.GetProperty("function").GetProperty("name").GetString(), c.GetProperty("function").GetProperty("arguments").GetString())).ToList();
        Assert.Equal(expected, streamed.Calls.Select(c => ((string?)c.Name, (string?)c.Arguments)).ToList());
        Assert.All(streamed.Calls, c => Assert.StartsWith("call_", c.Id));
        // The first call's arguments came in pieces as the model wrote them (the fake writes one byte a token).
        Assert.True(streamed.Deltas.Count(d => d.GetProperty("delta").TryGetProperty("tool_calls", out var t) && t[0].GetProperty("index").GetInt32() == 0) > 3);
    }

    [Fact]
    public async Task The_official_openai_client_reads_the_calls_streamed_and_not()
    {
        var chat = new OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential("unused"),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") }).GetChatClient(ApiServer.ModelName);
        var options = new OpenAI.Chat.ChatCompletionOptions { MaxOutputTokenCount = 300 };
        foreach (var tool in JsonDocument.Parse(Tools).RootElement.EnumerateArray())
            options.Tools.Add(OpenAI.Chat.ChatTool.CreateFunctionTool(tool.GetProperty("function").GetProperty("name").GetString()!, null,
                BinaryData.FromString(tool.GetProperty("function").GetProperty("parameters").GetRawText())));
        OpenAI.Chat.ChatMessage[] messages = [new OpenAI.Chat.UserChatMessage(TwoCalls)];

        var whole = (await chat.CompleteChatAsync(messages, options)).Value;
        var names = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(messages, options))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                if (call.FunctionName is { } name) names[call.Index] = name;
                (arguments.TryGetValue(call.Index, out var sb) ? sb : arguments[call.Index] = new StringBuilder()).Append(call.FunctionArgumentsUpdate?.ToString());
            }
            finish ??= update.FinishReason;
        }

        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, whole.FinishReason);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);
        Assert.Equal(whole.ToolCalls.Select(c => c.FunctionName), names.OrderBy(n => n.Key).Select(n => n.Value));
        Assert.Equal(whole.ToolCalls.Select(c => c.FunctionArguments.ToString()), arguments.OrderBy(a => a.Key).Select(a => a.Value.ToString()));
    }

    [Fact]
    public async Task Text_that_only_looks_like_the_start_of_a_tag_is_content_streamed_and_not()
    {
        const string text = "a <tool or <tool_call without a close";
        var whole = (await Post(Request(text))).GetProperty("choices")[0];
        var streamed = await Stream(Request(text));

        Assert.Equal(text, whole.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", whole.GetProperty("finish_reason").GetString());
        Assert.Equal(text, streamed.Content);
        Assert.Empty(streamed.Calls);
        Assert.Equal("stop", streamed.Finish);
    }

    [Fact]
    public async Task Without_parallel_tool_calls_only_the_first_call_is_answered_streamed_and_not()
    {
        const string noParallel = ", \"parallel_tool_calls\": false";
        var message = (await Post(Request(TwoCalls, noParallel))).GetProperty("choices")[0].GetProperty("message");
        var streamed = await Stream(Request(TwoCalls, noParallel));

        var call = Assert.Single(message.GetProperty("tool_calls").EnumerateArray().ToList());
        Assert.Equal("add", call.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("add", Assert.Single(streamed.Calls).Name);
        Assert.Equal(call.GetProperty("function").GetProperty("arguments").GetString(), streamed.Calls[0].Arguments);
        Assert.Equal("tool_calls", streamed.Finish);
        Assert.Equal(2, (await Post(Request(TwoCalls, ", \"parallel_tool_calls\": true"))).GetProperty("choices")[0]
            .GetProperty("message").GetProperty("tool_calls").GetArrayLength());
    }

    [Fact]
    public async Task Tool_choice_none_leaves_the_output_as_text()
    {
        var choice = (await Post(Request(TwoCalls, ", \"tool_choice\": \"none\""))).GetProperty("choices")[0];
        Assert.Equal(TwoCalls, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.False(choice.GetProperty("message").TryGetProperty("tool_calls", out _));
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Required_or_a_named_function_sends_the_engine_a_tool_call_constraint_over_the_allowed_functions()
    {
        await Post(Request("x", ", \"tool_choice\": \"required\""));
        var required = _server.Fake.LastRequest!.Sampling.Constraint!;
        Assert.Equal(ConstraintKind.ToolCall, required.Kind);
        Assert.Equal(2, JsonDocument.Parse(required.Source).RootElement.GetProperty("anyOf").GetArrayLength());

        await Post(Request("x", ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"add\"}}"));
        var named = JsonDocument.Parse(_server.Fake.LastRequest!.Sampling.Constraint!.Source).RootElement;
        Assert.Equal("add", named.GetProperty("properties").GetProperty("name").GetProperty("const").GetString());
        var automaton = GrammarCompiler.Compile(_server.Fake.LastRequest!.Sampling.Constraint!);
        Assert.NotNull(automaton);

        await Post(Request("x"));
        Assert.Null(_server.Fake.LastRequest!.Sampling.Constraint);
    }

    [Fact]
    public async Task A_history_with_tool_calls_and_tool_results_is_accepted()
    {
        var body = $$$"""
            {"tools": {{{Tools}}}, "max_tokens": 5, "messages": [
              {"role": "user", "content": "1 + 2?"},
              {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 1, \"b\": 2}"}}]},
              {"role": "tool", "tool_call_id": "call_1", "content": "3"}]}
            """;
        Assert.Equal("3", (await Post(body)).GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    public static TheoryData<string, string> Refusals => new()
    {
        { Request("x", ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"sub\"}}"), "tool_choice" },
        { Request("x", ", \"tool_choice\": \"sometimes\""), "tool_choice" },
        { """{"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}""", "tool_choice" },
        { """{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "a b"}}]}""", "tools[0].function.name" },
        { """{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "retrieval"}]}""", "tools[1].type" },
        { """{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "a", "parameters": []}}]}""", "tools[0].function.parameters" },
        { """{"messages": [{"role": "user", "content": "x"}], "tool_choice": "required", "tools": [{"type": "function", "function": {"name": "a", "parameters": {"type": "string", "pattern": "^a"}}}]}""", "tools[0].function.parameters" },
        { """{"messages": [{"role": "tool", "content": "3"}], "tools": [{"type": "function", "function": {"name": "a"}}]}""", "messages[0].tool_call_id" },
        { """{"messages": [{"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "a", "arguments": "{not json"}}]}], "tools": [{"type": "function", "function": {"name": "a"}}]}""", "messages[0].tool_calls[0].function.arguments" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task Bad_tools_or_tool_choice_is_a_400_naming_the_field(string body, string field)
    {
        var error = (await Post(body, HttpStatusCode.BadRequest)).GetProperty("error");
        Assert.Equal(field, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task Tools_for_a_model_whose_template_ignores_them_are_a_400_naming_tools()
    {
        await using var plain = await ApiServer.StartAsync();
        var r = await Json.PostAsync(plain.Http, "/v1/chat/completions", Request("x"));
        var error = (await Json.ReadAsync(r)).GetProperty("error");
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Equal("tools", error.GetProperty("param").GetString());
        Assert.Contains("chat template does not support tools", error.GetProperty("message").GetString());
    }
}
