using System.Net;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;
using ActorQuery.TestSupport;
using ActorQuery.Tokenization;

namespace ActorQuery.Api.Tests;

/// <summary>A model whose chat template breaks a limit for one request's messages: that request gets a 500 naming the
/// template's fault, and the server goes on answering.</summary>
public sealed class ChatTemplateErrorTests
{
    // Recurses without end only when the message says so, as a template can fail for some conversations only.
    private const string RecursesOnDemand =
        "{% macro m() %}{{ m() }}{% endmacro %}" +
        "{% for message in messages %}{% if message.content == 'recurse' %}{{ m() }}{% endif %}" +
        "<{{ message.role }}>{{ message.content }}\n{% endfor %}<assistant>";

    /// <summary>The byte tokenizer with a real chat template.</summary>
    private sealed class TemplatedTokenizer(ChatTemplate template) : ITokenizer
    {
        private readonly ByteTokenizer _bytes = new();
        public int VocabSize => _bytes.VocabSize;
        public bool HasChatTemplate => true;
        public IReadOnlyList<int> EndOfTurnTokenIds => _bytes.EndOfTurnTokenIds;
        public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false) => _bytes.Encode(text, addSpecialTokens);
        public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) => _bytes.Decode(ids, skipSpecialTokens);
        public IStreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = true) => _bytes.CreateStreamingDetokenizer(skipSpecialTokens);
        public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
            template.Render(messages, addGenerationPrompt);
    }

    [Fact]
    public async Task A_recursive_template_is_a_500_chat_template_error_and_the_next_request_is_served()
    {
        var tokenizer = new TemplatedTokenizer(new ChatTemplate(RecursesOnDemand, new Dictionary<string, string?>()));
        await using var server = await ApiServer.StartAsync(tokenizer: tokenizer);

        var failed = await Json.PostAsync(server.Http, "/v1/chat/completions",
            """{"messages": [{"role": "user", "content": "recurse"}], "max_tokens": 5}""");
        string text = await failed.Content.ReadAsStringAsync();
        Assert.True(failed.StatusCode == HttpStatusCode.InternalServerError, $"got {(int)failed.StatusCode}: {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("chat_template_error", error.GetProperty("code").GetString());
        Assert.Contains("macro recursion deeper than 64 (macro 'm')", error.GetProperty("message").GetString());

        var native = await Json.PostAsync(server.Http, "/query", """{"messages": [{"role": "user", "content": "recurse"}]}""");
        Assert.Equal(HttpStatusCode.InternalServerError, native.StatusCode);
        Assert.Equal("chat_template_error", (await Json.ReadAsync(native)).GetProperty("code").GetString());

        var served = await Json.PostAsync(server.Http, "/v1/chat/completions",
            """{"messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}""");
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }
}
