using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using OpenAI;
using OpenAI.Chat;

#pragma warning disable OPENAI001 // Seed is "for evaluation"; the server honours it, and the tests need repeatable samples

namespace ActorQuery.Host.Tests;

/// <summary>
/// Tool calling end to end on the real engine: the default model's weights with a tools-aware chat template in the
/// tagged form (<see cref="TaggedToolsServer"/>), asked with the official OpenAI client and plain HTTP. With
/// <c>tool_choice: "required"</c> the constraint alone makes the output a call whose arguments validate, whatever the
/// weights would have written.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class ToolCallServeTests(TaggedToolsServer shared) : IClassFixture<TaggedToolsServer>
{
    private const string AddParameters = """
        {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "note": {"type": "string", "maxLength": 4}},
         "required": ["a", "b"], "additionalProperties": false}
        """;

    private const string NowParameters = """{"type": "object", "additionalProperties": false}""";

    private HttpClient Http => shared.Server.Http;

    private ChatClient Chat() => new OpenAIClient(new ApiKeyCredential("unused"),
        new OpenAIClientOptions { Endpoint = new Uri(Http.BaseAddress!, "/v1") }).GetChatClient("default");

    private static ChatTool[] Tools =>
    [
        ChatTool.CreateFunctionTool("add", "Adds.", BinaryData.FromString(AddParameters)),
        ChatTool.CreateFunctionTool("now", null, BinaryData.FromString(NowParameters)),
    ];

    private static string? Invalidity(string schema, string arguments)
    {
        var result = JsonSchema.FromText(schema).Evaluate(JsonNode.Parse(arguments), new EvaluationOptions { OutputFormat = OutputFormat.List });
        return result.IsValid ? null : $"arguments {arguments} do not validate against {schema}";
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Required_tool_choice_yields_a_call_whose_arguments_validate_against_the_schema(long seed)
    {
        var options = new ChatCompletionOptions { ToolChoice = ChatToolChoice.CreateRequiredChoice(), Temperature = 1.5f, Seed = seed, MaxOutputTokenCount = 140 };
        foreach (var tool in Tools) options.Tools.Add(tool);

        var completion = (await Chat().CompleteChatAsync([new UserChatMessage("What is 2 + 3?")], options)).Value;

        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        var call = Assert.Single(completion.ToolCalls);
        Assert.StartsWith("call_", call.Id);
        Assert.Contains(call.FunctionName, new[] { "add", "now" });
        string schema = call.FunctionName == "add" ? AddParameters : NowParameters;
        Assert.Null(Invalidity(schema, call.FunctionArguments.ToString()));
    }

    [Fact]
    public async Task A_named_function_is_the_one_called()
    {
        var options = new ChatCompletionOptions { ToolChoice = ChatToolChoice.CreateFunctionChoice("add"), Temperature = 1f, Seed = 7, MaxOutputTokenCount = 140 };
        foreach (var tool in Tools) options.Tools.Add(tool);

        var call = Assert.Single((await Chat().CompleteChatAsync([new UserChatMessage("What time is it?")], options)).Value.ToolCalls);

        Assert.Equal("add", call.FunctionName);
        Assert.Null(Invalidity(AddParameters, call.FunctionArguments.ToString()));
    }

    private static string Body(bool stream) => $$$"""
        {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "temperature": 0, "max_tokens": 140, "stream": {{{(stream ? "true" : "false")}}},
         "tool_choice": "required",
         "tools": [{"type": "function", "function": {"name": "add", "parameters": {{{AddParameters}}}}}]}
        """;

    [Fact]
    public async Task Streamed_deltas_assemble_to_the_same_call_as_the_answer_not_streamed()
    {
        var whole = await Http.PostAsync("/v1/chat/completions", new StringContent(Body(false), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, whole.StatusCode);
        var message = JsonDocument.Parse(await whole.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("message");
        var expected = message.GetProperty("tool_calls")[0].GetProperty("function");

        var streamed = await Http.PostAsync("/v1/chat/completions", new StringContent(Body(true), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        var chunks = (await streamed.Content.ReadAsStringAsync()).Split('\n')
            .Where(l => l.StartsWith("data: ", StringComparison.Ordinal) && l != "data: [DONE]")
            .Select(l => JsonDocument.Parse(l[6..]).RootElement.GetProperty("choices")[0].Clone()).ToList();
        var calls = chunks.Select(c => c.GetProperty("delta")).Where(d => d.TryGetProperty("tool_calls", out _))
            .Select(d => d.GetProperty("tool_calls")[0]).ToList();

        Assert.All(calls, c => Assert.Equal(0, c.GetProperty("index").GetInt32()));
        Assert.StartsWith("call_", calls[0].GetProperty("id").GetString());
        Assert.Equal("function", calls[0].GetProperty("type").GetString());
        Assert.Equal(expected.GetProperty("name").GetString(), calls[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("", calls[0].GetProperty("function").GetProperty("arguments").GetString());
        Assert.Equal(expected.GetProperty("arguments").GetString(),
            string.Concat(calls.Select(c => c.GetProperty("function").GetProperty("arguments").GetString())));
        Assert.Null(Invalidity(AddParameters, expected.GetProperty("arguments").GetString()!));
        Assert.Equal("tool_calls", chunks[^1].GetProperty("finish_reason").GetString());
        Assert.DoesNotContain(chunks, c => c.GetProperty("delta").TryGetProperty("content", out var t) && t.GetString() is { Length: > 0 });
    }

    [Fact]
    public async Task A_tool_result_in_the_history_is_accepted()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };
        foreach (var tool in Tools) options.Tools.Add(tool);
        ChatMessage[] history =
        [
            new UserChatMessage("What is 2 + 3?"),
            new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall("call_1", "add", BinaryData.FromString("""{"a": 2, "b": 3}"""))]),
            new ToolChatMessage("call_1", "5"),
        ];

        var completion = (await Chat().CompleteChatAsync(history, options)).Value;

        Assert.True(completion.FinishReason is ChatFinishReason.Stop or ChatFinishReason.Length or ChatFinishReason.ToolCalls);
        Assert.True(completion.Usage.InputTokenCount > 20);
    }

    [Fact]
    public async Task Tools_for_the_default_model_are_a_400_saying_its_template_does_not_support_them()
    {
        await using var plain = await DefaultModelServer.StartAsync([]);
        var r = await plain.Http.PostAsync("/v1/chat/completions", new StringContent(Body(false), Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Equal("tools", error.GetProperty("param").GetString());
        Assert.Contains("does not support tools", error.GetProperty("message").GetString());
    }
}
