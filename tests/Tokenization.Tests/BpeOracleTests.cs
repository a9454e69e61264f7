using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using static ActorQuery.Tokenization.Tests.TokenizerFixtures;

namespace ActorQuery.Tokenization.Tests;

/// <summary>
/// The hand-written BPE against an independent implementation: Microsoft.ML.Tokenizers' BpeTokenizer, built from
/// the same tokenizer.json, must give the same ids on many generated strings (it also matches every reference case).
/// </summary>
public sealed class BpeOracleTests
{
    private static BpeTokenizer BuildOracle()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(QwenTokenizerJson));
        var root = doc.RootElement;
        var model = root.GetProperty("model");
        var vocab = model.GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        var merges = model.GetProperty("merges").EnumerateArray().Select(m => $"{m[0].GetString()} {m[1].GetString()}").ToList();
        var special = root.GetProperty("added_tokens").EnumerateArray()
            .ToDictionary(a => a.GetProperty("content").GetString()!, a => a.GetProperty("id").GetInt32());
        var pattern = root.GetProperty("pre_tokenizer").GetProperty("pretokenizers")[0].GetProperty("pattern").GetProperty("Regex").GetString()!;
        return BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = special,
            PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), special),
        });
    }

    [Fact]
    public void Gives_the_same_ids_as_microsoft_ml_tokenizers_on_generated_text()
    {
        var oracle = BuildOracle();
        foreach (var c in Cases) Assert.Equal(c.Ids, oracle.EncodeToIds(c.Text.Normalize(NormalizationForm.FormC))); // the oracle is sound

        var random = new Random(99);
        for (int n = 0; n < 800; n++)
        {
            var s = RoundTripAndStreamingTests.RandomText(random);
            var expected = oracle.EncodeToIds(s.Normalize(NormalizationForm.FormC));
            var actual = Qwen.Encode(s);
            if (!expected.SequenceEqual(actual))
                Assert.Fail($"#{n} {RoundTripAndStreamingTests.Escape(s)}: oracle [{string.Join(",", expected)}], ours [{string.Join(",", actual)}]");
        }
    }
}
