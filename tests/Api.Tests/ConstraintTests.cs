using System.Net;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;
using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Api.Tests;

/// <summary>response_format on the OpenAI endpoints and json_schema / regex / choices on /query reach the engine as
/// the constraint's text, and a constraint the engine cannot enforce is a 400 naming the field and the keyword.</summary>
public sealed class ConstraintTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApiServer Server => shared.Server;

    private const string Schema = """{"type":"object","properties":{"answer":{"type":"integer"}},"required":["answer"]}""";

    private async Task<OutputConstraint?> ConstraintSent(string path, string body)
    {
        var before = Server.Fake.Requests.Count;
        var r = await Json.PostAsync(Server.Http, path, body);
        Assert.True(r.StatusCode == HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
        return Server.Fake.Requests.Skip(before).Single().Sampling.Constraint;
    }

    [Fact]
    public async Task Chat_response_format_json_schema_and_json_object_reach_the_engine()
    {
        var c = await ConstraintSent("/v1/chat/completions", """
            {"messages": [{"role": "user", "content": "x"}], "max_tokens": 3,
             "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true, "schema": 
            """ + Schema + "}}}");
        Assert.Equal(ConstraintKind.JsonSchema, c!.Kind);
        Assert.Equal(JsonDocument.Parse(Schema).RootElement.GetRawText(), JsonDocument.Parse(c.Source).RootElement.GetRawText());
        Assert.Equal(OutputConstraint.JsonObject, await ConstraintSent("/v1/chat/completions",
            """{"messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "response_format": {"type": "json_object"}}"""));
        Assert.Null(await ConstraintSent("/v1/chat/completions",
            """{"messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "response_format": {"type": "text"}}"""));
    }

    [Fact]
    public async Task Completions_take_response_format_too()
    {
        var c = await ConstraintSent("/v1/completions",
            """{"prompt": "x", "max_tokens": 3, "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": """ + Schema + "}}}");
        Assert.Equal(ConstraintKind.JsonSchema, c!.Kind);
    }

    [Fact]
    public async Task Query_takes_json_schema_regex_or_choices()
    {
        Assert.Equal(ConstraintKind.JsonSchema, (await ConstraintSent("/query", $$"""{"prompt": "x", "json_schema": {{Schema}}}"""))!.Kind);
        Assert.Equal(new OutputConstraint(ConstraintKind.Regex, "[0-9]{3}"), await ConstraintSent("/query", """{"prompt": "x", "regex": "[0-9]{3}"}"""));
        Assert.Equal(OutputConstraint.Choices(["yes", "no"]), await ConstraintSent("/query", """{"prompt": "x", "choices": ["yes", "no"]}"""));
        Assert.Null(await ConstraintSent("/query", """{"prompt": "x"}"""));
    }

    public static TheoryData<string, string, string, string> Refusals => new()
    {
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "string", "pattern": "^a"}}}}""", "response_format.json_schema.schema", "'pattern'" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}}""", "response_format.json_schema", "required" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}""", "response_format.type", "'xml'" },
        { "/v1/completions", """{"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}}}}""", "response_format.json_schema.schema", "/properties/d: 'format'" },
        { "/query", """{"prompt": "x", "json_schema": {"type": "array", "uniqueItems": true}}""", "json_schema", "'uniqueItems'" },
        { "/query", """{"prompt": "x", "regex": "(a)\\1"}""", "regex", "backreferences" },
        { "/query", """{"prompt": "x", "choices": []}""", "choices", "at least one" },
        { "/query", """{"prompt": "x", "regex": "a", "choices": ["a"]}""", "choices", "at most one" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task An_unenforceable_constraint_is_a_400_naming_the_field_and_why(string path, string body, string field, string why)
    {
        var r = await Json.PostAsync(Server.Http, path, body);
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.BadRequest, text);
        var doc = JsonDocument.Parse(text).RootElement;
        var message = path.StartsWith("/v1") ? doc.GetProperty("error").GetProperty("message").GetString()! : doc.GetProperty("detail").GetString()!;
        Assert.StartsWith(field + ":", message);
        Assert.Contains(why, message);
    }

    [Fact]
    public async Task The_openapi_document_describes_the_constraint_fields()
    {
        var doc = await Json.ReadAsync(await Server.Http.GetAsync("/openapi/v1.json"));
        var schemas = doc.GetProperty("components").GetProperty("schemas");
        Assert.True(schemas.GetProperty("ChatCompletionRequest").GetProperty("properties").TryGetProperty("response_format", out _));
        Assert.True(schemas.GetProperty("CompletionRequest").GetProperty("properties").TryGetProperty("response_format", out _));
        var native = schemas.GetProperty("NativeQueryRequest").GetProperty("properties");
        foreach (var f in new[] { "json_schema", "regex", "choices" }) Assert.True(native.TryGetProperty(f, out _), f);
        var paths = doc.GetProperty("paths");
        Assert.Contains("response_format", paths.GetProperty("/v1/chat/completions").GetProperty("post").GetProperty("description").GetString());
        Assert.Contains("response_format", paths.GetProperty("/v1/completions").GetProperty("post").GetProperty("description").GetString());
        Assert.Contains("json_schema", paths.GetProperty("/query").GetProperty("post").GetProperty("description").GetString());
    }
}
