using System.Text.Json;
using ActorQuery.Tokenization;

namespace ActorQuery.Tokenization.Tests;

/// <summary>Tools, tool calls and tool results through the Qwen tools-aware template (models/shapes/qwen2.5-0.5b),
/// against what Hugging Face's Jinja renders for the same conversations (tests/fixtures/chat-template-tools/qwen.json,
/// written by tools/chat-template-reference/render.mjs).</summary>
public sealed class ChatTemplateToolsTests
{
    private static readonly JsonElement Reference =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixtures.Root, "chat-template-tools", "qwen.json"))).RootElement;

    private static IReadOnlyList<JsonElement> Tools => Reference.GetProperty("tools").EnumerateArray().ToList();

    public static TheoryData<string> Conversations() =>
        new(Reference.GetProperty("conversations").EnumerateArray().Select(c => c.GetProperty("name").GetString()!));

    /// <summary>A message in transformers' form (arguments as an object) as the API hands it to the template.</summary>
    private static ChatMessage Message(JsonElement m) =>
        new(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)
        {
            ToolCalls = m.TryGetProperty("tool_calls", out var calls)
                ? calls.EnumerateArray().Select(c => new ChatToolCall(c.GetProperty("id").GetString()!,
                    c.GetProperty("function").GetProperty("name").GetString()!, c.GetProperty("function").GetProperty("arguments"))).ToList()
                : null,
            ToolCallId = m.TryGetProperty("tool_call_id", out var id) ? id.GetString() : null,
        };

    [Theory]
    [MemberData(nameof(Conversations))]
    public void Renders_tools_calls_and_results_as_hugging_face_does(string name)
    {
        var c = Reference.GetProperty("conversations").EnumerateArray().Single(x => x.GetProperty("name").GetString() == name);
        var messages = c.GetProperty("messages").EnumerateArray().Select(Message).ToList();

        string rendered = TokenizerFixtures.Qwen.ApplyChatTemplate(messages, addGenerationPrompt: true, Tools);

        Assert.Equal(c.GetProperty("rendered").GetString(), rendered);
    }

    [Fact]
    public void The_qwen_template_supports_tools_and_a_plain_chatml_template_does_not()
    {
        Assert.True(TokenizerFixtures.Qwen.ChatTemplateSupportsTools);
        var plain = new ChatTemplate("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + " +
                                     "'<|im_end|>\\n'}}{% endfor %}{# tools #}{{ '<tools>' }}", new Dictionary<string, string?>());
        Assert.False(plain.SupportsTools);
        var e = Assert.Throws<ChatTemplateException>(() => plain.Render([new ChatMessage("user", "hi")], true, Tools));
        Assert.Contains("does not support tools", e.Message);
    }
}
