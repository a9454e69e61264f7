using System.Text;
using ActorQuery.Tokenization;
using static ActorQuery.Tokenization.Tests.TokenizerFixtures;

namespace ActorQuery.Tokenization.Tests;

/// <summary>
/// Properties over many generated strings (a seeded generator, so a failure names a reproducible string):
/// decode(encode(s)) == s, and streaming decode == whole decode without a broken character in any chunk.
/// </summary>
public sealed class RoundTripAndStreamingTests
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    [Fact]
    public void Decode_of_encode_gives_back_any_unicode_string()
    {
        var random = new Random(20261127);
        for (int n = 0; n < 1500; n++)
        {
            var s = RandomText(random);
            var expected = s.Normalize(NormalizationForm.FormC); // the tokenizer's normalizer is NFC
            var ids = Qwen.Encode(s);
            var decoded = Qwen.Decode(ids);
            if (decoded != expected)
                Assert.Fail($"round trip #{n} failed for {Escape(s)}: got {Escape(decoded)}");
        }
    }

    [Theory]
    [InlineData("\ufffe", "\ufffe")]
    [InlineData("a\uffffe\u0301b", "a\uffff\u00e9b")]
    [InlineData("\ufdd0 cafe\u0301 \U0001FFFE", "\ufdd0 caf\u00e9 \U0001FFFE")]
    public void Noncharacters_pass_through_the_normalizer_and_the_text_around_them_is_still_normalized(string text, string expected)
    {
        Assert.Equal(expected, Qwen.Decode(Qwen.Encode(text)));
    }

    [Fact]
    public void Streaming_chunks_of_random_text_join_to_the_whole_decode_and_never_split_a_character()
    {
        var random = new Random(7);
        for (int n = 0; n < 500; n++)
        {
            var ids = Qwen.Encode(RandomText(random));
            AssertStreamsLikeDecode(ids, $"random string #{n}");
        }
    }

    [Theory]
    [MemberData(nameof(CaseIndices), MemberType = typeof(TokenizerFixtures))]
    public void Streaming_chunks_of_every_reference_string_join_to_its_decode(int index)
    {
        var c = Cases[index];
        AssertStreamsLikeDecode(c.Ids, c.ToString());
    }

    [Fact]
    public void Holds_back_the_first_bytes_of_an_emoji_until_its_last_token_arrives()
    {
        var ids = Qwen.Encode(" 🚀"); // Ġð Ł ļĢ: the space and the rocket's four bytes over three tokens
        Assert.Equal(3, ids.Count);
        var stream = Qwen.CreateStreamingDetokenizer();
        var chunks = ids.Select(stream.Push).ToList();
        Assert.Equal([" ", "", "🚀"], chunks);
        Assert.Equal("", stream.Flush());
    }

    [Fact]
    public void A_character_cut_off_at_the_end_flushes_as_the_replacement_character_like_decode()
    {
        var partial = Qwen.Encode(" 🚀").Take(2).ToArray();
        var stream = Qwen.CreateStreamingDetokenizer();
        Assert.Equal(" ", stream.Push(partial[0]) + stream.Push(partial[1]));
        Assert.Equal("\uFFFD", stream.Flush());
        Assert.Equal(" \uFFFD", Qwen.Decode(partial));
    }

    [Fact]
    public void Streaming_skips_special_tokens_by_default_and_keeps_them_when_asked()
    {
        var chat = Chats[1];
        var skipping = Qwen.CreateStreamingDetokenizer();
        Assert.Equal(Qwen.Decode(chat.Ids, skipSpecialTokens: true), string.Concat(chat.Ids.Select(skipping.Push)) + skipping.Flush());
        var keeping = Qwen.CreateStreamingDetokenizer(skipSpecialTokens: false);
        Assert.Equal(chat.Text, string.Concat(chat.Ids.Select(keeping.Push)) + keeping.Flush());
    }

    private static void AssertStreamsLikeDecode(IReadOnlyList<int> ids, string what)
    {
        var stream = Qwen.CreateStreamingDetokenizer(skipSpecialTokens: false);
        var chunks = ids.Select(stream.Push).Append(stream.Flush()).ToList();
        Assert.Equal(Qwen.Decode(ids), string.Concat(chunks));
        foreach (var chunk in chunks)
        {
            Assert.False(chunk.Contains('\uFFFD'), $"{what}: chunk {Escape(chunk)} holds a replacement character");
            try { StrictUtf8.GetBytes(chunk); }
            catch (EncoderFallbackException) { Assert.Fail($"{what}: chunk {Escape(chunk)} is not valid UTF-8 (a split surrogate pair)"); }
        }
    }

    /// <summary>A mix of the scripts and shapes that trip tokenizers up: CJK, emoji with ZWJ and skin tones,
    /// combining marks, RTL scripts, whitespace runs, digits, control characters, special-token look-alikes,
    /// and any Unicode scalar value at all.</summary>
    internal static string RandomText(Random r)
    {
        var sb = new StringBuilder();
        int pieces = r.Next(1, 24);
        for (int i = 0; i < pieces; i++)
        {
            switch (r.Next(14))
            {
                case 0: sb.Append(Word(r, 'a', 'z')); break;
                case 1: sb.Append(r.Next(0, 1_000_000).ToString(System.Globalization.CultureInfo.InvariantCulture)); break;
                case 2: sb.Append(Pick(r, " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00A0", "\u3000", "\u2028", "\u200B")); break;
                case 3: for (int k = r.Next(1, 8); k > 0; k--) sb.Append((char)r.Next(0x4E00, 0x9FFF)); break;
                case 4: sb.Append(char.ConvertFromUtf32(r.Next(0x1F300, 0x1FAFF))); break;
                case 5: sb.Append("🧑").Append(char.ConvertFromUtf32(r.Next(0x1F3FB, 0x1F400))).Append('\u200D').Append("🤝\uFE0F"); break;
                case 6: sb.Append((char)r.Next('a', 'z' + 1)).Append((char)r.Next(0x0300, 0x0370)); if (r.Next(2) == 0) sb.Append((char)r.Next(0x0300, 0x0370)); break;
                case 7: sb.Append(Word(r, '\u0600', '\u06FF')); break;
                case 8: sb.Append(Word(r, '\u05D0', '\u05EA')).Append(' ').Append(Word(r, '\u0410', '\u044F')); break;
                case 9: sb.Append(Pick(r, ".", ",", "!?", "...", "'s", "'ll", "-", "**", "()", "{}", "<", ">", "/", "\\", "\"", "#", "$", "%")); break;
                case 10: sb.Append(Pick(r, "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<|", "|>", "<|im_", "<tool_call>")); break;
                case 11: sb.Append((char)r.Next(0, 0x20)); break;
                case 12: for (int k = r.Next(1, 6); k > 0; k--) sb.Append((char)r.Next(0xAC00, 0xD7A4)); break;
                default: sb.Append(AnyScalar(r)); break;
            }
        }
        return sb.ToString();
    }

    private static string Word(Random r, char from, char to)
    {
        var chars = new char[r.Next(1, 10)];
        for (int i = 0; i < chars.Length; i++) chars[i] = (char)r.Next(from, to + 1);
        return new string(chars);
    }

    private static string Pick(Random r, params string[] options) => options[r.Next(options.Length)];

    private static string AnyScalar(Random r)
    {
        while (true)
        {
            int cp = r.Next(4) == 0 ? r.Next(0x10000, 0x110000) : r.Next(0x20, 0x10000);
            if (cp is >= 0xD800 and <= 0xDFFF or 0xFFFD) continue; // surrogates are not characters; U+FFFD is what a broken decode shows
            return char.ConvertFromUtf32(cp);
        }
    }

    internal static string Escape(string s) =>
        "\"" + string.Concat(s.Select(c => c is >= ' ' and < '\u007F' ? c.ToString() : $"\\u{(int)c:X4}")) + "\"";
}
