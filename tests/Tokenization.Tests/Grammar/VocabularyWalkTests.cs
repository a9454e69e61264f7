using System.Text;
using ActorQuery.Tokenization.Grammar;
using static ActorQuery.Tokenization.Tests.Grammar.GrammarTestKit;

namespace ActorQuery.Tokenization.Tests.Grammar;

/// <summary>Masks over the real 151k-token Qwen vocabulary: the trie walk allows exactly the tokens that keep the
/// output valid, and drawing any allowed token, step after step, always ends in an output that validates.</summary>
public class VocabularyWalkTests
{
    private static readonly int[] EndIds = [151643, 151645];     // <|endoftext|>, <|im_end|>

    private static TokenVocabulary Vocabulary => TokenizerFixtures.Qwen.GrammarVocabulary;

    private static bool IsSet(ulong[] bits, int id) => (bits[id >> 6] & (1UL << (id & 63))) != 0;

    [Fact]
    public void The_trie_walk_allows_exactly_the_tokens_whose_bytes_the_automaton_accepts()
    {
        var a = Schema("""{"type":"object","properties":{"name":{"type":"string","maxLength":4},"n":{"type":"integer","minimum":0,"maximum":300}},"required":["name","n"]}""");
        foreach (var prefix in new[] { "", "{", "{\"name\":", "{\"name\": \"ab", "{\"name\":\"abcd", "{\"name\":\"a\",\"n\":2" })
        {
            var m = new GrammarMatcher(a, Vocabulary, EndIds);
            foreach (var id in TokenizerFixtures.Qwen.Encode(prefix)) Assert.True(m.Accept(id), prefix);
            var bits = m.AllowedBits();
            int allowed = 0;
            for (int id = 0; id < Vocabulary.Size; id++)
            {
                bool expected = !EndIds.Contains(id) && m.Allows(id);
                Assert.True(expected == IsSet(bits, id), $"after {prefix}: token {id} {Encoding.UTF8.GetString(Vocabulary.Bytes(id) ?? [])}");
                if (expected) allowed++;
            }
            Assert.True(allowed > 0, prefix);
        }
    }

    [Fact]
    public void End_of_sequence_is_allowed_only_where_the_output_is_complete()
    {
        var m = new GrammarMatcher(Regex("[0-9]{2,3}"), Vocabulary, EndIds);
        var logits = new float[151936];
        m.MaskLogits(logits);
        Assert.True(float.IsNegativeInfinity(logits[151643]));
        Assert.True(float.IsNegativeInfinity(logits[151900]));  // padded embedding rows past the tokenizer
        foreach (var id in TokenizerFixtures.Qwen.Encode("12")) Assert.True(m.Accept(id));
        logits = new float[151936];
        m.MaskLogits(logits);
        Assert.Equal(0f, logits[151643]);
        Assert.Equal(0f, logits[TokenizerFixtures.Qwen.Encode("3")[0]]);
        Assert.True(float.IsNegativeInfinity(logits[TokenizerFixtures.Qwen.Encode("a")[0]]));
    }

    /// <summary>Draws uniformly among the allowed tokens (and ends with even odds where it may): what a model that
    /// knows nothing produces under the constraint. Returns the text, or null if it did not end within the budget.</summary>
    private static string? Walk(GrammarAutomaton a, int seed, int budget = 400)
    {
        var rng = new Random(seed);
        var m = new GrammarMatcher(a, Vocabulary, EndIds);
        var bytes = new List<byte>();
        for (int step = 0; step < budget; step++)
        {
            if (m.IsComplete && (!m.State.CanContinue || rng.Next(2) == 0)) return Encoding.UTF8.GetString(bytes.ToArray());
            var bits = m.AllowedBits();
            var allowed = new List<int>();
            for (int w = 0; w < bits.Length; w++)
                for (ulong x = bits[w]; x != 0; x &= x - 1) allowed.Add(w * 64 + System.Numerics.BitOperations.TrailingZeroCount(x));
            Assert.NotEmpty(allowed);
            int token = allowed[rng.Next(allowed.Count)];
            Assert.True(m.Accept(token));
            bytes.AddRange(Vocabulary.Bytes(token)!);
        }
        return null;
    }

    [Fact]
    public void The_validator_refuses_what_a_schema_does_not_admit()
    {
        Assert.NotNull(Invalidity(TestSchemas[0], "{\"answer\":\"95\"}"));
        Assert.NotNull(Invalidity(TestSchemas[0], "{\"answer\":95"));
        Assert.Null(Invalidity(TestSchemas[0], "{\"answer\": 95}"));
    }

    [Fact]
    public void Random_tokens_under_each_test_schema_always_validate()
    {
        var failures = new List<string>();
        foreach (var (schema, i) in TestSchemas.Select((s, i) => (s, i)))
        {
            var a = Schema(schema);
            for (int seed = 0; seed < 10; seed++)
            {
                var text = Walk(a, seed * 100 + i);
                if (text is null) failures.Add($"schema {i} seed {seed}: no end within the budget");
                else if (Invalidity(schema, text) is { } why) failures.Add($"schema {i} seed {seed}: {why}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Random_tokens_under_each_test_regex_and_choice_list_always_match()
    {
        foreach (var pattern in TestRegexes)
        {
            var a = Regex(pattern);
            var dotnet = new System.Text.RegularExpressions.Regex($"^(?:{pattern})$");
            for (int seed = 0; seed < 10; seed++)
            {
                var text = Walk(a, seed);
                Assert.NotNull(text);
                Assert.True(dotnet.IsMatch(text!), $"{pattern}: {text}");
            }
        }
        foreach (var choices in TestChoices)
        {
            var a = GrammarCompiler.Compile(OutputConstraint.Choices(choices));
            for (int seed = 0; seed < 10; seed++) Assert.Contains(Walk(a, seed), choices);
        }
    }

    [Fact]
    public void A_schema_that_must_nest_past_the_depth_limit_lets_the_output_end_instead_of_leaving_nothing_to_draw()
    {
        var m = new GrammarMatcher(Schema("""{"type":"object","properties":{"child":{"$ref":"#"}},"required":["child"]}"""), Vocabulary, EndIds);
        var piece = TokenizerFixtures.Qwen.Encode("{\"child\":");
        bool refused = false;
        for (int level = 0; level < 200 && !refused; level++)
            foreach (var t in piece)
                if (!m.Accept(t)) { refused = true; break; }
        Assert.True(refused);                                   // the depth limit cut the recursion
        for (int step = 0; step < 20 && !m.Allows(EndIds[0]); step++)
        {
            var bits = m.AllowedBits();
            int w = Array.FindIndex(bits, x => x != 0);
            Assert.True(m.Accept(w * 64 + System.Numerics.BitOperations.TrailingZeroCount(bits[w])));
        }
        Assert.True(m.Allows(EndIds[0]));
        var logits = new float[151936];
        m.MaskLogits(logits);
        Assert.Equal(0f, logits[EndIds[0]]);
    }

    [Fact]
    public void After_an_end_token_only_end_tokens_may_follow()
    {
        var m = new GrammarMatcher(GrammarCompiler.Compile(OutputConstraint.Choices(["yes"])), Vocabulary, EndIds);
        foreach (var t in TokenizerFixtures.Qwen.Encode("yes")) Assert.True(m.Accept(t));
        Assert.True(m.Accept(EndIds[0]));
        Assert.False(m.Allows(TokenizerFixtures.Qwen.Encode("yes")[0]));
        Assert.True(m.Accept(EndIds[1]));
        var logits = new float[151936];
        m.MaskLogits(logits);
        Assert.Equal(2, logits.Count(x => !float.IsNegativeInfinity(x)));
    }

    [Fact]
    public void Json_object_walks_end_in_objects_when_they_end()
    {
        var a = GrammarCompiler.Compile(OutputConstraint.JsonObject);
        for (int seed = 0; seed < 5; seed++)
        {
            var text = Walk(a, seed);
            if (text is not null) Assert.Equal(System.Text.Json.JsonValueKind.Object, System.Text.Json.JsonDocument.Parse(text).RootElement.ValueKind);
        }
    }
}
