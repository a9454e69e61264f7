using System.ClientModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using AiFinishReason = Microsoft.Extensions.AI.ChatFinishReason;
using OpenAiChatMessage = OpenAI.Chat.ChatMessage;
using OpenAiFinishReason = OpenAI.Chat.ChatFinishReason;

#pragma warning disable OPENAI001 // Seed is "for evaluation"; the server honours it, and the tests need repeatable samples

namespace ActorQuery.Host.Tests;

/// <summary>
/// Tool calling through real clients against the real server on loopback, once per tool-call format (Qwen's tagged
/// calls and Llama 3.1+'s JSON calls): the official OpenAI .NET client and Microsoft.Extensions.AI's IChatClient here,
/// the official <c>openai</c> npm client and the Vercel AI SDK in <c>ToolClientMatrixTests.Node.cs</c>. Each shows that
/// <c>tool_choice: "required"</c> gives a call whose arguments validate against the schema, that the streamed deltas
/// assemble to the answer not streamed, and that a tool result in the history is accepted and answered.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed partial class ToolClientMatrixTests(TaggedToolsServer tagged, LlamaToolsServer llama)
    : IClassFixture<TaggedToolsServer>, IClassFixture<LlamaToolsServer>
{
    private const string AddParameters = """
        {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "note": {"type": "string", "maxLength": 4}},
         "required": ["a", "b"], "additionalProperties": false}
        """;

    private DefaultModelServer Server(string format) => format == "llama" ? llama.Server : tagged.Server;

    private static string? Invalidity(string arguments)
    {
        var result = JsonSchema.FromText(AddParameters).Evaluate(JsonNode.Parse(arguments), new EvaluationOptions { OutputFormat = OutputFormat.List });
        return result.IsValid ? null : $"arguments {arguments} do not validate against {AddParameters}";
    }

    private ChatClient OpenAiChat(string format) => new OpenAIClient(new ApiKeyCredential("unused"),
        new OpenAIClientOptions { Endpoint = new Uri(Server(format).Http.BaseAddress!, "/v1") }).GetChatClient("default");

    private static ChatCompletionOptions OpenAiOptions(ChatToolChoice? choice, float temperature, long seed)
    {
        var options = new ChatCompletionOptions { ToolChoice = choice, Temperature = temperature, Seed = seed, MaxOutputTokenCount = 100 };
        options.Tools.Add(ChatTool.CreateFunctionTool("add", "Adds two integers.", BinaryData.FromString(AddParameters)));
        return options;
    }

    [Theory]
    [InlineData("tagged")]
    [InlineData("llama")]
    public async Task OpenAI_dotnet_client_gets_a_required_call_whose_streamed_deltas_assemble_to_the_answer_and_a_result_is_answered(string format)
    {
        var chat = OpenAiChat(format);
        OpenAiChatMessage[] question = [new UserChatMessage("What is 2 + 3?")];

        // Required, sampled hot: only the grammar keeps the arguments valid.
        var hot = (await chat.CompleteChatAsync(question, OpenAiOptions(ChatToolChoice.CreateRequiredChoice(), 1.5f, 11))).Value;
        Assert.Equal(OpenAiFinishReason.ToolCalls, hot.FinishReason);
        var call = Assert.Single(hot.ToolCalls);
        Assert.Equal("add", call.FunctionName);
        Assert.StartsWith("call_", call.Id);
        Assert.Null(Invalidity(call.FunctionArguments.ToString()));

        // The same request, greedy, answered whole and streamed.
        var greedy = OpenAiOptions(ChatToolChoice.CreateRequiredChoice(), 0, 1);
        var whole = Assert.Single((await chat.CompleteChatAsync(question, greedy)).Value.ToolCalls);
        string? name = null, id = null;
        var arguments = new System.Text.StringBuilder();
        OpenAiFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(question, greedy))
        {
            foreach (var part in update.ToolCallUpdates)
            {
                Assert.Equal(0, part.Index);
                name ??= part.FunctionName;
                id ??= part.ToolCallId;
                arguments.Append(part.FunctionArgumentsUpdate?.ToString());
            }
            finish ??= update.FinishReason;
        }
        Assert.Equal(OpenAiFinishReason.ToolCalls, finish);
        Assert.StartsWith("call_", id);
        Assert.Equal(whole.FunctionName, name);
        Assert.Equal(whole.FunctionArguments.ToString(), arguments.ToString());

        // The call and its result in the history: accepted, rendered into the prompt, and answered.
        OpenAiChatMessage[] history =
        [
            .. question,
            new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall("call_1", "add", BinaryData.FromString("""{"a": 2, "b": 3}"""))]),
            new ToolChatMessage("call_1", "5"),
        ];
        var answer = (await chat.CompleteChatAsync(history, OpenAiOptions(null, 0, 1))).Value;
        var plain = (await chat.CompleteChatAsync(question, OpenAiOptions(null, 0, 1))).Value;
        Assert.True(answer.Content.Count > 0 || answer.ToolCalls.Count > 0, "no answer after the tool result");
        Assert.True(answer.Usage.InputTokenCount > plain.Usage.InputTokenCount + 5, "the tool call and result did not reach the prompt");
    }

    private IChatClient AiChat(string format) => OpenAiChat(format).AsIChatClient();

    private static ChatOptions AiOptions(ChatToolMode? mode, float temperature, long seed) => new()
    {
        Tools = [AIFunctionFactory.CreateDeclaration("add", "Adds two integers.", JsonDocument.Parse(AddParameters).RootElement)],
        ToolMode = mode,
        Temperature = temperature,
        Seed = seed,
        MaxOutputTokens = 100,
    };

    private static FunctionCallContent CallOf(ChatResponse response) =>
        Assert.Single(response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());

    /// <summary>A number, not an int: the untrained model may write more digits than an int holds.</summary>
    public sealed record Sum(double Answer);

    [Theory]
    [InlineData("tagged")]
    [InlineData("llama")]
    public async Task Microsoft_extensions_ai_chat_client_gets_a_required_call_streamed_alike_a_result_answered_and_a_typed_response(string format)
    {
        var chat = AiChat(format);
        AiChatMessage[] question = [new(ChatRole.User, "What is 2 + 3?")];

        var hot = await chat.GetResponseAsync(question, AiOptions(ChatToolMode.RequireSpecific("add"), 1.5f, 12));
        Assert.Equal(AiFinishReason.ToolCalls, hot.FinishReason);
        var call = CallOf(hot);
        Assert.Equal("add", call.Name);
        Assert.Null(Invalidity(JsonSerializer.Serialize(call.Arguments)));

        var greedy = AiOptions(ChatToolMode.RequireAny, 0, 1);
        var whole = CallOf(await chat.GetResponseAsync(question, greedy));
        var streamed = await chat.GetStreamingResponseAsync(question, greedy).ToChatResponseAsync();
        Assert.Equal(AiFinishReason.ToolCalls, streamed.FinishReason);
        var assembled = CallOf(streamed);
        Assert.Equal(whole.Name, assembled.Name);
        Assert.Equal(JsonSerializer.Serialize(whole.Arguments), JsonSerializer.Serialize(assembled.Arguments));

        AiChatMessage[] history =
        [
            .. question,
            new(ChatRole.Assistant, [new FunctionCallContent("call_1", "add", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", 5)]),
        ];
        var answer = await chat.GetResponseAsync(history, AiOptions(ChatToolMode.Auto, 0, 1));
        var plain = await chat.GetResponseAsync(question, AiOptions(ChatToolMode.Auto, 0, 1));
        Assert.NotEmpty(answer.Messages.SelectMany(m => m.Contents));
        Assert.True(answer.Usage!.InputTokenCount > plain.Usage!.InputTokenCount + 5, "the tool call and result did not reach the prompt");

        // Structured output: the schema Microsoft.Extensions.AI derives from the type, held by the grammar.
        var typed = await chat.GetResponseAsync<Sum>("What is 37 + 58?", new ChatOptions { Temperature = 0, MaxOutputTokens = 40 });
        Assert.True(typed.TryGetResult(out var sum), $"not a Sum: {typed.Text}");
        Assert.NotNull(sum);
    }
}
