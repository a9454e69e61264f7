using System.Net;
using System.Text;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

/// <summary>Every kind of bad input gets the right status and names the field; the server then answers normally.</summary>
public sealed class BadInputTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApiServer Server => shared.Server;

    private static readonly string Huge = "{\"prompt\": \"" + new string('a', (1 << 20) + 10) + "\"}";
    private static readonly string LongPrompt = "{\"prompt\": \"" + new string('a', ApiServer.ContextLength + 1) + "\"}";

    // path, body, content type, status, field
    public static TheoryData<string, string, string, int, string> Rows => new()
    {
        { "/query", "{\"prompt\": \"hi\"", "application/json", 400, "body" }, // malformed JSON
        { "/query", "[1, 2]", "application/json", 400, "body" },
        { "/query", "{\"prompt\": 12}", "application/json", 400, "prompt" }, // wrong type
        { "/query", "{\"prompt\": \"hi\", \"max_new_tokens\": \"ten\"}", "application/json", 400, "max_new_tokens" },
        { "/query", "{\"prompt\": \"hi\", \"stream\": \"yes\"}", "application/json", 400, "stream" },
        { "/query", "{\"max_new_tokens\": 5}", "application/json", 400, "prompt" }, // missing prompt
        { "/query", "{\"prompt\": \"\"}", "application/json", 400, "prompt" },
        { "/query", "{\"messages\": []}", "application/json", 400, "messages" }, // empty messages
        { "/query", "{\"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}", "application/json", 400, "messages[0].role" }, // unknown role
        { "/query", "{\"messages\": [{\"role\": \"user\"}]}", "application/json", 400, "messages[0].content" },
        { "/query", "{\"prompt\": \"hi\", \"max_new_tokens\": -3}", "application/json", 400, "max_new_tokens" }, // negative
        { "/query", "{\"prompt\": \"hi\", \"max_new_tokens\": 0}", "application/json", 400, "max_new_tokens" },
        { "/query", "{\"prompt\": \"hi\", \"max_new_tokens\": 1000000}", "application/json", 413, "max_new_tokens" }, // huge: over the context
        { "/query", "{\"prompt\": \"hi\", \"max_new_tokens\": 99999999999}", "application/json", 400, "max_new_tokens" }, // huge: not an int
        { "/query", "{\"prompt\": \"hi\", \"temperature\": -0.1}", "application/json", 400, "temperature" },
        { "/query", "{\"prompt\": \"hi\", \"top_p\": 1.5}", "application/json", 400, "top_p" },
        { "/query", "{\"prompt\": \"hi\", \"top_k\": -1}", "application/json", 400, "top_k" },
        { "/query", "{\"prompt\": \"hi\", \"min_p\": 2}", "application/json", 400, "min_p" },
        { "/query", "{\"prompt\": \"hi\", \"presence_penalty\": 3}", "application/json", 400, "presence_penalty" },
        { "/query", "{\"prompt\": \"hi\", \"repetition_penalty\": 0}", "application/json", 400, "repetition_penalty" },
        { "/query", "{\"prompt\": \"hi\", \"stop\": 5}", "application/json", 400, "stop" },
        { "/query", "{\"prompt\": \"hi\", \"stop\": \"\\udbff\"}", "application/json", 400, "stop" }, // a lone surrogate
        { "/query", "{\"prompt\": \"hi\", \"stop\": [\"ok\", \"x\\udc00\"]}", "application/json", 400, "stop[1]" },
        { "/query", "{\"prompt\": \"hi\", \"stop\": \"" + new string('s', 1001) + "\"}", "application/json", 400, "stop" }, // too long
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stop\": [\"\\ud83d\\ude00\", \"\\ud83d\"]}", "application/json", 400, "stop[1]" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"\\udbff\"}]}", "application/json", 400, "messages[0].content" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\\udc00\"}]}]}", "application/json", 400, "messages[0].content[0].text" },
        { "/v1/completions", "{\"prompt\": \"\\udbff\"}", "application/json", 400, "prompt" },
        // A lone surrogate in a name, not a text (found by scripts/fuzz-api.sh, seed 1247683301 at 30,000 requests).
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"\\udc00\": 1}]}]}", "application/json", 400, "messages[0].content[0]" },
        { "/query", "{\"prompt\": \"hi\", \"json_schema\": {\"type\": \"object\", \"properties\": {\"\\udc00\": {\"type\": \"string\"}}}}", "application/json", 400, "body" },
        { "/query", "{\"prompt\": \"hi\", \"timeout_ms\": 0}", "application/json", 400, "timeout_ms" },
        { "/query", "{\"prompt\": \"hi\", \"min_tokens\": 50, \"max_new_tokens\": 5}", "application/json", 400, "min_tokens" },
        { "/query", "{\"prompt\": \"hi\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "application/json", 400, "messages" },
        { "/query", Huge, "application/json", 413, "body" }, // body over the limit
        { "/query", "{\"prompt\": \"hi\"}", "text/plain", 415, "Content-Type" }, // wrong content type
        { "/query", "prompt=hi", "application/x-www-form-urlencoded", 415, "Content-Type" },
        { "/query", LongPrompt, "application/json", 413, "prompt" }, // prompt longer than the context
        { "/v1/chat/completions", "{\"messages\": \"hi\"}", "application/json", 400, "messages" },
        { "/v1/chat/completions", "{\"messages\": []}", "application/json", 400, "messages" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}", "application/json", 400, "messages[0].role" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": -1}", "application/json", 400, "max_tokens" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_completion_tokens\": 100000}", "application/json", 413, "max_completion_tokens" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_p\": 1.01}", "application/json", 400, "top_p" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true, \"top_logprobs\": 21}", "application/json", 400, "top_logprobs" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", "application/json", 400, "messages[0].content[0].type" },
        { "/v1/completions", "{\"max_tokens\": 3}", "application/json", 400, "prompt" },
        { "/v1/completions", "{\"prompt\": [\"a\", 7]}", "application/json", 400, "prompt" },
        { "/v1/completions", "{\"prompt\": \"a\", \"temperature\": -2}", "application/json", 400, "temperature" },
        { "/v1/completions", "{\"prompt\": \"a\", \"logprobs\": 9}", "application/json", 400, "logprobs" },
        { "/v1/completions", "{\"prompt\": \"a\"}", "text/plain", 415, "Content-Type" },
        { "/v1/completions", "{\"prompt\": \"a\"", "application/json", 400, "body" },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task Bad_input_gets_the_right_status_and_names_the_field_then_a_normal_query_succeeds(
        string path, string body, string contentType, int status, string field)
    {
        var r = await Server.Http.PostAsync(path, new StringContent(body, Encoding.UTF8, contentType));
        await AssertError(r, path, status, field);
        await AssertNormalQueryWorks();
    }

    [Fact]
    public async Task Invalid_utf8_is_400_naming_the_body()
    {
        byte[] bytes = [.. "{\"prompt\": \""u8, 0xC3, 0x28, .. "\"}"u8];
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new("application/json");
        await AssertError(await Server.Http.PostAsync("/query", content), "/query", 400, "body");
        await AssertNormalQueryWorks();
    }

    [Fact]
    public async Task Missing_content_type_is_415()
    {
        var content = new ByteArrayContent("{\"prompt\": \"hi\"}"u8.ToArray());
        await AssertError(await Server.Http.PostAsync("/query", content), "/query", 415, "Content-Type");
    }

    private static async Task AssertError(HttpResponseMessage r, string path, int status, string field)
    {
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(status == (int)r.StatusCode, $"expected {status}, got {(int)r.StatusCode}: {text}");
        var body = JsonDocument.Parse(text).RootElement;
        if (path.StartsWith("/v1"))
        {
            var error = body.GetProperty("error");
            Assert.Equal(field, error.GetProperty("param").GetString());
            Assert.StartsWith(field + ":", error.GetProperty("message").GetString());
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        }
        else
        {
            Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
            Assert.Equal(field, body.GetProperty("field").GetString());
            Assert.StartsWith(field + ":", body.GetProperty("detail").GetString());
            Assert.Equal(status, body.GetProperty("status").GetInt32());
            Assert.False(string.IsNullOrEmpty(body.GetProperty("request_id").GetString()));
        }
    }

    private async Task AssertNormalQueryWorks()
    {
        var r = await Json.PostAsync(Server.Http, "/query", """{"prompt": "still here", "max_new_tokens": 5}""");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("still", (await Json.ReadAsync(r)).GetProperty("text").GetString());
    }
}
