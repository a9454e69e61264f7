using ActorQuery.Tokenization.Grammar;
using static ActorQuery.Tokenization.Tests.Grammar.GrammarTestKit;

namespace ActorQuery.Tokenization.Tests.Grammar;

/// <summary>The tool-call constraint: the JSON the schema allows, between Qwen2.5's tool-call tags.</summary>
public sealed class ToolCallGrammarTests
{
    private const string CallSchema = """
        {"anyOf": [
          {"type": "object", "properties": {"name": {"const": "add"}, "arguments": {"type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"], "additionalProperties": false}},
           "required": ["name", "arguments"], "additionalProperties": false},
          {"type": "object", "properties": {"name": {"const": "now"}, "arguments": {"type": "object", "properties": {}}},
           "required": ["name", "arguments"], "additionalProperties": false}]}
        """;

    private static readonly GrammarAutomaton Call = GrammarCompiler.Compile(new OutputConstraint(ConstraintKind.ToolCall, CallSchema));

    [Fact]
    public void Accepts_a_call_of_an_allowed_function_between_the_tags()
    {
        Assert.True(Accepts(Call, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": -2}}\n</tool_call>"));
        Assert.True(Accepts(Call, "<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call>"));
    }

    [Fact]
    public void Refuses_text_outside_the_tags_unknown_names_and_arguments_against_the_schema()
    {
        Assert.False(IsPrefix(Call, "Sure"));
        Assert.False(Accepts(Call, "{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}"));
        Assert.False(IsPrefix(Call, "<tool_call>\n{\"name\": \"sub\""));
        Assert.False(IsPrefix(Call, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": \"1\""));
        Assert.False(Accepts(Call, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>"));
        Assert.False(Accepts(Call, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call> and more"));
    }
}
