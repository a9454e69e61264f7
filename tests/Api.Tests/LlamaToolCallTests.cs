using System.Net;
using System.Text.Json;
using ActorQuery.Api.Tests.Fakes;
using ActorQuery.Tokenization;
using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Api.Tests;

/// <summary>
/// Tool calls in Llama 3.1+'s JSON form over the fake engine (which answers with the prompt's bytes): the template here
/// writes an assistant call as the Llama templates do, which makes the served model's format LlamaJson, and renders the
/// last user message as is, so a test writes the model's output as that message.
/// </summary>
public sealed class LlamaToolCallTests : IAsyncLifetime
{
    private const string LlamaTemplate =
        "{%- if tools %}{% endif %}{%- set m = messages[-1] %}{%- if m.tool_calls %}" +
        "{{- '{\"name\": \"' + m.tool_calls[0].function.name + '\", \"parameters\": ' + m.tool_calls[0].function.arguments | tojson + '}' }}" +
        "{%- else %}{{- m.content }}{%- endif %}";

    private ApiServer _server = null!;

    public async Task InitializeAsync() => _server = await ApiServer.StartAsync(tokenizer: new ToolCallTests.ToolsTokenizer(LlamaTemplate));

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private const string Tools = """
        [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}},
         {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]
        """;

    private const string TwoCalls = "<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": [2, \"};\"]}}; {\"parameters\": {}, \"name\": \"now\"}";

    private static string Request(string modelOutput, string extra = "") =>
        $$"""{"messages": [{"role": "user", "content": {{JsonSerializer.Serialize(modelOutput)}}}], "tools": {{Tools}}{{extra}}, "max_tokens": 300}""";

    private async Task<JsonElement> Post(string body)
    {
        var r = await Json.PostAsync(_server.Http, "/v1/chat/completions", body);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, $"{(int)r.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("choices")[0].Clone();
    }

    private static List<(string?, string?)> NamesAndArguments(JsonElement message) =>
        message.GetProperty("tool_calls").EnumerateArray()
            .Select(c => (c.GetProperty("function").GetProperty("name").GetString(), c.GetProperty("function").GetProperty("arguments").GetString())).ToList();

    [Fact]
    public void A_template_that_writes_calls_with_parameters_makes_the_format_llama_json()
    {
        Assert.Equal(ToolCallFormat.LlamaJson, new ToolCallTests.ToolsTokenizer(LlamaTemplate).ChatTemplateToolCallFormat);
        Assert.Equal(ToolCallFormat.Tagged, new ToolCallTests.ToolsTokenizer().ChatTemplateToolCallFormat);
    }

    [Fact]
    public async Task Calls_after_the_python_tag_separated_by_semicolons_become_tool_calls_with_no_content()
    {
        var choice = await Post(Request(TwoCalls));

        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
        Assert.Equal([("add", "{\"a\": 1, \"b\": [2, \"};\"]}"), ("now", "{}")], NamesAndArguments(message));
        Assert.All(message.GetProperty("tool_calls").EnumerateArray(), c => Assert.StartsWith("call_", c.GetProperty("id").GetString()));
    }

    [Theory]
    [InlineData(TwoCalls)]
    [InlineData("\n {\"name\": \"now\", \"parameters\": {}}")]
    public async Task Streamed_deltas_assemble_to_the_calls_not_streamed_with_the_name_first_and_the_parameters_in_pieces(string output)
    {
        var whole = (await Post(Request(output))).GetProperty("message");
        var streamed = await ToolCallTests.StreamAsync(_server.Http, Request(output));

        Assert.Equal("tool_calls", streamed.Finish);
        Assert.Equal("", streamed.Content);
        Assert.Equal(NamesAndArguments(whole), streamed.Calls.Select(c => ((string?)c.Name, (string?)c.Arguments)).ToList());
        var first = streamed.Deltas.Select(d => d.GetProperty("delta")).Where(d => d.TryGetProperty("tool_calls", out _)).ToList();
        Assert.Equal("", first[0].GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetString());
        if (output == TwoCalls) Assert.True(first.Count(d => d.GetProperty("tool_calls")[0].GetProperty("index").GetInt32() == 0) > 3);
    }

    [Theory]
    [InlineData("The answer is {\"name\": \"now\", \"parameters\": {}}")]
    [InlineData("{\"answer\": 5} and more")]
    [InlineData("  <|python")]
    public async Task Output_that_does_not_open_with_a_call_is_content_streamed_and_not(string output)
    {
        var choice = await Post(Request(output));
        var streamed = await ToolCallTests.StreamAsync(_server.Http, Request(output));

        Assert.Equal(output, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(output, streamed.Content);
        Assert.Empty(streamed.Calls);
        Assert.Equal("stop", streamed.Finish);
    }

    [Fact]
    public async Task Without_parallel_tool_calls_only_the_first_call_is_answered_streamed_and_not()
    {
        const string noParallel = ", \"parallel_tool_calls\": false";
        var message = (await Post(Request(TwoCalls, noParallel))).GetProperty("message");
        var streamed = await ToolCallTests.StreamAsync(_server.Http, Request(TwoCalls, noParallel));

        Assert.Equal([("add", "{\"a\": 1, \"b\": [2, \"};\"]}")], NamesAndArguments(message));
        Assert.Equal("add", Assert.Single(streamed.Calls).Name);
        Assert.Equal("tool_calls", streamed.Finish);
    }

    [Fact]
    public async Task Required_is_a_json_schema_constraint_on_one_bare_call_with_its_arguments_under_parameters()
    {
        await Post(Request("x", ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"add\"}}"));
        var constraint = _server.Fake.LastRequest!.Sampling.Constraint!;

        Assert.Equal(ConstraintKind.JsonSchema, constraint.Kind);
        var schema = JsonDocument.Parse(constraint.Source).RootElement;
        Assert.Equal("add", schema.GetProperty("properties").GetProperty("name").GetProperty("const").GetString());
        Assert.Equal(["name", "parameters"], schema.GetProperty("required").EnumerateArray().Select(x => x.GetString()));

        // The automaton accepts exactly the call the parser reads back.
        var automaton = GrammarCompiler.Compile(constraint);
        Assert.True(Accepts(automaton, """{"name": "add", "parameters": {"a": 1, "b": 2}}"""));
        Assert.False(Accepts(automaton, """{"name": "add", "parameters": {"a": 1, "b": 2}}; {"name": "add", "parameters": {"a": 1, "b": 2}}"""));
        Assert.False(Accepts(automaton, """{"name": "now", "parameters": {}}"""));
    }

    private static bool Accepts(GrammarAutomaton automaton, string text)
    {
        var state = automaton.Start;
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(text))
        {
            state = automaton.Step(state, b);
            if (state.IsDead) return false;
        }
        return state.CanEnd;
    }
}
