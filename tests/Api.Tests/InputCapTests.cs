using System.Net;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

/// <summary>The caps checked before tokenization: messages, prompt characters, stop strings; each a 400 naming field and cap.</summary>
public sealed class InputCapTests
{
    [Fact]
    public async Task Too_many_messages_too_many_prompt_characters_and_too_many_stop_strings_are_400_naming_the_field_and_the_cap()
    {
        await using var server = await ApiServer.StartAsync(configure: o => { o.MaxMessages = 3; o.MaxPromptChars = 100; o.MaxStopStrings = 2; });
        string Message(int chars) => JsonSerializer.Serialize(new { role = "user", content = new string('a', chars) });

        await Expect(server, "/v1/chat/completions", $$"""{"messages": [{{string.Join(",", Enumerable.Repeat(Message(1), 4))}}]}""", "messages", "at most 3");
        await Expect(server, "/query", $$"""{"messages": [{{Message(60)}}, {{Message(41)}}]}""", "messages", "over 100 characters");
        await Expect(server, "/query", $$"""{"prompt": "{{new string('a', 101)}}"}""", "prompt", "at most 100");
        await Expect(server, "/v1/completions", $$"""{"prompt": "{{new string('a', 101)}}"}""", "prompt", "at most 100");
        await Expect(server, "/query", """{"prompt": "hi", "stop": ["a", "b", "c"]}""", "stop", "at most 2");

        // At the caps, served.
        using var ok = await Json.PostAsync(server.Http, "/query", $$"""{"messages": [{{Message(50)}}, {{Message(50)}}], "max_new_tokens": 2, "stop": ["a", "b"]}""");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    private static async Task Expect(ApiServer server, string path, string body, string field, string reason)
    {
        using var r = await Json.PostAsync(server.Http, path, body);
        var json = await Json.ReadAsync(r);
        Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{path}: {(int)r.StatusCode} {json}");
        var (param, message) = path.StartsWith("/v1")
            ? (json.GetProperty("error").GetProperty("param").GetString(), json.GetProperty("error").GetProperty("message").GetString())
            : (json.GetProperty("field").GetString(), json.GetProperty("detail").GetString());
        Assert.Equal(field, param);
        Assert.Contains(reason, message);
    }
}
