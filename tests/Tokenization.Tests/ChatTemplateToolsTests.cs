using System.Text.Json;
using ActorQuery.Tokenization;

namespace ActorQuery.Tokenization.Tests;

/// <summary>Tools, tool calls and tool results through three tools-aware templates (Qwen3's, as
/// models/shapes/qwen2.5-0.5b ships it, Qwen2.5-Instruct's and Llama 3.1-Instruct's), against what Hugging Face's Jinja
/// renders for the same conversations (tests/fixtures/chat-template-tools/, written by
/// tools/chat-template-reference/render.mjs). Where Hugging Face's render raises (Llama 3.1 refuses two calls in one
/// message), ours raises with the template's message.</summary>
public sealed class ChatTemplateToolsTests
{
    private static string Fixture(string name) => Path.Combine(TokenizerFixtures.Root, "chat-template-tools", name);

    private static JsonElement Reference(string template) => JsonDocument.Parse(File.ReadAllText(Fixture($"{template}.json"))).RootElement;

    private static IReadOnlyList<JsonElement> Tools => Reference("qwen3").GetProperty("tools").EnumerateArray().ToList();

    private static readonly Dictionary<string, string?> LlamaSpecialTokens = new() { ["bos_token"] = "<|begin_of_text|>", ["eos_token"] = "<|eot_id|>" };

    /// <summary>Each template's renderer: the Qwen3 one through the tokenizer (as the server renders), the others alone
    /// with their models' special tokens.</summary>
    private static string Render(string template, IReadOnlyList<ChatMessage> messages) => template == "qwen3"
        ? TokenizerFixtures.Qwen.ApplyChatTemplate(messages, addGenerationPrompt: true, Tools)
        : new ChatTemplate(File.ReadAllText(Fixture($"{template}.jinja")),
            template.StartsWith("llama", StringComparison.Ordinal) ? LlamaSpecialTokens : new Dictionary<string, string?>()).Render(messages, true, Tools);

    public static TheoryData<string, string> Conversations()
    {
        var data = new TheoryData<string, string>();
        foreach (var template in new[] { "qwen3", "qwen2.5-instruct", "llama3.1-instruct" })
            foreach (var c in Reference(template).GetProperty("conversations").EnumerateArray())
                data.Add(template, c.GetProperty("name").GetString()!);
        return data;
    }

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
    public void Renders_tools_calls_and_results_as_hugging_face_does(string template, string name)
    {
        var c = Reference(template).GetProperty("conversations").EnumerateArray().Single(x => x.GetProperty("name").GetString() == name);
        var messages = c.GetProperty("messages").EnumerateArray().Select(Message).ToList();

        if (c.TryGetProperty("error", out var error))
        {
            var e = Assert.Throws<ChatTemplateException>(() => Render(template, messages));
            Assert.Contains(error.GetString()!, e.Message);
            return;
        }
        string rendered = Render(template, messages);

        Assert.Equal(c.GetProperty("rendered").GetString(), rendered);
    }

    [Fact]
    public void Every_template_renders_at_least_ten_conversations_and_llama_refuses_only_what_it_cannot_write()
    {
        foreach (var template in new[] { "qwen3", "qwen2.5-instruct", "llama3.1-instruct" })
        {
            var conversations = Reference(template).GetProperty("conversations").EnumerateArray().ToList();
            Assert.True(conversations.Count(c => c.TryGetProperty("rendered", out _)) >= 9, template);
            Assert.True(conversations.Count >= 10, template);
        }
        var refused = Reference("llama3.1-instruct").GetProperty("conversations").EnumerateArray()
            .Where(c => c.TryGetProperty("error", out _)).Select(c => c.GetProperty("name").GetString()).ToList();
        Assert.Equal(["parallel_calls_and_results_then_answer", "system_message_only"], refused);
    }

    [Fact]
    public void The_llama_templates_are_read_as_writing_json_calls_and_the_qwen_ones_as_writing_tagged_calls()
    {
        var none = new Dictionary<string, string?>();
        Assert.Equal(ToolCallFormat.LlamaJson, new ChatTemplate(File.ReadAllText(Fixture("llama3.1-instruct.jinja")), none).ToolCallFormat);
        Assert.Equal(ToolCallFormat.Tagged, new ChatTemplate(File.ReadAllText(Fixture("qwen2.5-instruct.jinja")), none).ToolCallFormat);
        Assert.Equal(ToolCallFormat.Tagged, TokenizerFixtures.Qwen.ChatTemplateToolCallFormat);
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
