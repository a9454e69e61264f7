using ActorQuery.Tokenization;

namespace ActorQuery.Tokenization.Tests;

public sealed class TokenizerLoadingTests
{
    [Fact]
    public void A_tokenizer_json_without_a_model_is_reported_as_malformed()
    {
        var e = Assert.Throws<InvalidDataException>(() => new HfTokenizer(new TokenizerFiles("{}")));
        Assert.Contains("'model'", e.Message);
    }

    [Fact]
    public void A_tokenizer_json_that_is_not_json_names_the_file()
    {
        var e = Assert.Throws<InvalidDataException>(() => new HfTokenizer(new TokenizerFiles("{ nope")));
        Assert.Contains("tokenizer.json", e.Message);
    }

    [Fact]
    public void A_wordpiece_or_sentencepiece_tokenizer_is_refused_by_name()
    {
        var e = Assert.Throws<NotSupportedException>(() =>
            new HfTokenizer(new TokenizerFiles("""{"model": {"type": "WordPiece", "vocab": {}}, "decoder": {"type": "WordPiece"}}""")));
        Assert.Contains("WordPiece", e.Message);
    }

    [Fact]
    public void A_chat_template_beyond_the_supported_jinja_keeps_plain_prompts_working_and_explains_itself_on_chat()
    {
        var files = new TokenizerFiles(
            File.ReadAllText(TokenizerFixtures.QwenTokenizerJson),
            """{"chat_template": "{% include 'other.jinja' %}", "eos_token": "<|im_end|>"}""");
        var withBadTemplate = new HfTokenizer(files);
        Assert.False(withBadTemplate.HasChatTemplate);
        Assert.Equal([9707, 11, 1879, 0], withBadTemplate.Encode("Hello, world!"));
        var e = Assert.Throws<ChatTemplateException>(() => withBadTemplate.ApplyChatTemplate([new("user", "hi")]));
        Assert.Contains("include", e.Message);
        Assert.True(e.IsTemplateFault);
    }

    [Fact]
    public void A_pre_tokenizer_regex_that_backtracks_catastrophically_fails_the_encode_instead_of_hanging()
    {
        // ^(a|aa)+$ tries Fibonacci(n) ways to split n a's that are not followed by the end: for 80, only the timeout ends it.
        var json = File.ReadAllText(TokenizerFixtures.QwenTokenizerJson);
        var doc = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        doc["pre_tokenizer"] = System.Text.Json.Nodes.JsonNode.Parse(
            """{"type": "Split", "pattern": {"Regex": "^(a|aa)+$"}, "behavior": "Isolated", "invert": false}""");
        var tokenizer = new HfTokenizer(new TokenizerFiles(doc.ToJsonString()));
        Assert.NotEmpty(tokenizer.Encode("hello"));
        var e = Assert.Throws<InvalidOperationException>(() => tokenizer.Encode(new string('a', 80) + "!"));
        Assert.Contains("pre-tokenizer regex '^(a|aa)+$' took longer than 1 s", e.Message);
    }
}
