using ActorQuery.Tokenization;
using static ActorQuery.Tokenization.Tests.TokenizerFixtures;

namespace ActorQuery.Tokenization.Tests;

/// <summary>The Qwen3 tokenizer against Hugging Face's reference outputs (tests/fixtures/tokenizer-reference/qwen3.json).</summary>
public sealed class QwenTokenizerTests
{
    [Theory]
    [MemberData(nameof(CaseIndices), MemberType = typeof(TokenizerFixtures))]
    public void Encodes_every_reference_text_to_the_reference_ids(int index)
    {
        var c = Cases[index];
        Assert.Equal(c.Ids, Qwen.Encode(c.Text));
    }

    [Theory]
    [MemberData(nameof(CaseIndices), MemberType = typeof(TokenizerFixtures))]
    public void Decodes_every_reference_id_list_to_the_reference_text(int index)
    {
        var c = Cases[index];
        Assert.Equal(c.Decoded, Qwen.Decode(c.Ids));
    }

    [Fact]
    public void Renders_both_reference_chats_exactly_as_apply_chat_template_in_text_and_ids()
    {
        Assert.Equal(2, Chats.Count);
        foreach (var chat in Chats)
        {
            var text = Qwen.ApplyChatTemplate(chat.Messages, addGenerationPrompt: true);
            Assert.Equal(chat.Text, text);
            Assert.Equal(chat.Ids, Qwen.Encode(text));
        }
    }

    [Fact]
    public void Matches_special_and_plain_added_tokens_written_in_text_as_single_tokens()
    {
        Assert.Equal([151644, 872, 198], Qwen.Encode("<|im_start|>user\n"));
        Assert.Equal(151667, Assert.Single(Qwen.Encode("<think>")));
        Assert.Equal(151643, Assert.Single(Qwen.Encode("<|endoftext|>")));
        // A near miss is ordinary text.
        Assert.True(Qwen.Encode("<|im_star|>").Count > 1);
    }

    [Fact]
    public void Decoding_keeps_or_skips_special_tokens_but_always_keeps_plain_added_tokens()
    {
        var ids = Qwen.Encode("<|im_start|>assistant\n<think>\nhm\n</think>\n\nHi<|im_end|>");
        Assert.Equal("<|im_start|>assistant\n<think>\nhm\n</think>\n\nHi<|im_end|>", Qwen.Decode(ids));
        Assert.Equal("assistant\n<think>\nhm\n</think>\n\nHi", Qwen.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Normalises_text_to_NFC_before_encoding_as_the_tokenizer_json_says()
    {
        Assert.Equal(Qwen.Encode("café"), Qwen.Encode("cafe\u0301"));
    }

    [Fact]
    public void Knows_vocabulary_size_and_end_of_turn_tokens()
    {
        Assert.Equal(151669, Qwen.VocabSize);
        Assert.Contains(151645, Qwen.EndOfTurnTokenIds); // <|im_end|>, also the eos_token
        Assert.Contains(151643, Qwen.EndOfTurnTokenIds); // <|endoftext|>
        Assert.Equal(151645, Qwen.EosTokenId);
        Assert.Null(Qwen.BosTokenId);
        Assert.True(Qwen.HasChatTemplate);
    }

    [Fact]
    public void Adds_no_bos_for_qwen_even_when_special_tokens_are_asked_for()
    {
        Assert.Equal(Qwen.Encode("hello world"), Qwen.Encode("hello world", addSpecialTokens: true));
    }

    [Fact]
    public void Skips_ids_beyond_the_vocabulary_as_hugging_face_does()
    {
        // Qwen2.5 models pad their embedding table to 151936 rows; a sampled padding id decodes to nothing.
        Assert.Equal("hello", Qwen.Decode([14990, 151900, -1]));
    }

    [Fact]
    public void Loads_from_a_tokenizer_json_path_as_well_as_from_its_folder()
    {
        var fromFile = HfTokenizer.FromPath(QwenTokenizerJson);
        Assert.True(fromFile.HasChatTemplate);
        Assert.Equal(Cases[1].Ids, fromFile.Encode(Cases[1].Text));
    }

    [Fact]
    public void Names_the_missing_path_when_there_is_no_tokenizer()
    {
        var e = Assert.Throws<FileNotFoundException>(() => HfTokenizer.FromPath("/no/such/model"));
        Assert.Contains("/no/such/model", e.Message);
    }

    [Fact]
    public void Qwen3_template_drops_earlier_reasoning_and_keeps_it_after_the_last_question()
    {
        var history = Qwen.ApplyChatTemplate(
        [
            new("user", "q1"),
            new("assistant", "<think>\nreasoning\n</think>\n\nanswer"),
            new("user", "q2"),
        ]);
        Assert.Equal("<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\nanswer<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n", history);

        var last = Qwen.ApplyChatTemplate([new("user", "q"), new("assistant", "<think>\nr\n</think>\n\na")], addGenerationPrompt: false);
        Assert.Equal("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\na<|im_end|>\n", last);
    }

    [Fact]
    public void Rejects_an_unknown_role_naming_it()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Qwen.ApplyChatTemplate([new("wizard", "hi")]));
        Assert.Contains("'wizard'", e.Message);
        Assert.Contains("messages[0].role", e.Message);
    }
}
