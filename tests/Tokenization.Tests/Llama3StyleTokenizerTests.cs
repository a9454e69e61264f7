using System.Text.Json;
using ActorQuery.Tokenization;

namespace ActorQuery.Tokenization.Tests;

/// <summary>
/// A small tokenizer built the way Llama 3's is (ignore_merges, a BOS-adding post-processor, header/eot special
/// tokens, clean_up_tokenization_spaces, the official Llama 3 chat template) to show those code paths.
/// </summary>
public sealed class Llama3StyleTokenizerTests
{
    // The chat template of Meta-Llama-3-8B-Instruct's tokenizer_config.json, verbatim.
    public const string Llama3Template =
        @"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

    private const int Hello = 259, SpaceWorld = 260, Bos = 261, EndOfText = 262, Eot = 265, Eom = 266;

    internal static HfTokenizer Build(bool withTemplate = true)
    {
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) vocab[ByteChar(b)] = b;
        vocab["he"] = 256;
        vocab["hel"] = 257;
        vocab["hell"] = 258;
        vocab["hello"] = Hello;
        vocab["Ġworld"] = SpaceWorld; // reachable by no merge: only ignore_merges makes " world" one token
        string[] special = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"];
        var tokenizer = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = special.Select((s, i) => new Dictionary<string, object?>
            {
                ["id"] = Bos + i, ["content"] = s, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            }).ToList(),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new Dictionary<string, object?>
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new object[]
                {
                    new Dictionary<string, object?>
                    {
                        ["type"] = "Split",
                        ["pattern"] = new Dictionary<string, object?> { ["Regex"] = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+" },
                        ["behavior"] = "Isolated", ["invert"] = false,
                    },
                    new Dictionary<string, object?> { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false },
                },
            },
            ["post_processor"] = new Dictionary<string, object?>
            {
                ["type"] = "Sequence",
                ["processors"] = new object[]
                {
                    new Dictionary<string, object?> { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
                    new Dictionary<string, object?>
                    {
                        ["type"] = "TemplateProcessing",
                        ["single"] = new object[]
                        {
                            new Dictionary<string, object?> { ["SpecialToken"] = new Dictionary<string, object?> { ["id"] = "<|begin_of_text|>", ["type_id"] = 0 } },
                            new Dictionary<string, object?> { ["Sequence"] = new Dictionary<string, object?> { ["id"] = "A", ["type_id"] = 0 } },
                        },
                        ["special_tokens"] = new Dictionary<string, object?>
                        {
                            ["<|begin_of_text|>"] = new Dictionary<string, object?> { ["id"] = "<|begin_of_text|>", ["ids"] = new[] { Bos }, ["tokens"] = new[] { "<|begin_of_text|>" } },
                        },
                    },
                },
            },
            ["decoder"] = new Dictionary<string, object?> { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = true,
                ["vocab"] = vocab,
                ["merges"] = new[] { "h e", "he l", "hel l", "hell o" },
            },
        };
        var config = new Dictionary<string, object?>
        {
            ["bos_token"] = "<|begin_of_text|>",
            ["eos_token"] = "<|eot_id|>",
            ["clean_up_tokenization_spaces"] = true,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
        };
        if (withTemplate) config["chat_template"] = Llama3Template;
        var generation = """{"bos_token_id": 261, "eos_token_id": [262, 265]}""";
        return new HfTokenizer(new TokenizerFiles(JsonSerializer.Serialize(tokenizer), JsonSerializer.Serialize(config), generation));
    }

    /// <summary>GPT-2's byte-to-character table, written out again so that the test does not trust the code under test.</summary>
    private static string ByteChar(int b)
    {
        bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
        if (printable) return ((char)b).ToString();
        int n = 0;
        for (int x = 0; x < b; x++) if (!(x is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF)) n++;
        return ((char)(256 + n)).ToString();
    }

    [Fact]
    public void Renders_the_official_llama3_template_with_bos_headers_and_eot()
    {
        var text = Build().ApplyChatTemplate([new("system", "You are a bot."), new("user", "  Hi there \n")]);
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a bot.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            text);
    }

    [Fact]
    public void Leaves_out_the_generation_prompt_when_not_asked()
    {
        var text = Build().ApplyChatTemplate([new("user", "Hi")], addGenerationPrompt: false);
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", text);
    }

    [Fact]
    public void Adds_bos_from_the_post_processor_and_takes_whole_words_from_the_vocabulary_under_ignore_merges()
    {
        var tokenizer = Build();
        Assert.Equal([Bos, Hello, SpaceWorld], tokenizer.Encode("hello world", addSpecialTokens: true));
        Assert.Equal([Hello, SpaceWorld], tokenizer.Encode("hello world"));
        // The rendered prompt already starts with <|begin_of_text|>: encoded without special tokens it has one BOS.
        var prompt = tokenizer.Encode(tokenizer.ApplyChatTemplate([new("user", "hello")]));
        Assert.Equal(Bos, prompt[0]);
        Assert.Equal(1, prompt.Count(id => id == Bos));
    }

    [Fact]
    public void Stops_at_eot_eom_and_end_of_text_and_the_generation_config_eos()
    {
        var tokenizer = Build();
        Assert.Equal(new[] { EndOfText, Eot, Eom }.Order(), tokenizer.EndOfTurnTokenIds.Order());
        Assert.Equal(Bos, tokenizer.BosTokenId);
        Assert.Equal(Eot, tokenizer.EosTokenId);
    }

    [Fact]
    public void Cleans_up_spaces_before_punctuation_as_transformers_does_and_streams_the_same_text()
    {
        var tokenizer = Build();
        var ids = tokenizer.Encode("hello , world . it 's");
        Assert.Equal("hello, world. it's", tokenizer.Decode(ids));
        var stream = tokenizer.CreateStreamingDetokenizer();
        var streamed = string.Concat(ids.Select(stream.Push)) + stream.Flush();
        Assert.Equal("hello, world. it's", streamed);
    }

    [Fact]
    public void A_model_without_a_chat_template_answers_chat_with_a_clear_error()
    {
        var tokenizer = Build(withTemplate: false);
        Assert.False(tokenizer.HasChatTemplate);
        var e = Assert.Throws<ChatTemplateException>(() => tokenizer.ApplyChatTemplate([new("user", "hi")]));
        Assert.Contains("no chat template", e.Message);
    }
}
