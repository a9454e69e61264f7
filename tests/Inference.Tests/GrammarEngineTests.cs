using System.Text.Json;
using System.Text.Json.Nodes;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization;
using ActorQuery.Tokenization.Grammar;
using Json.Schema;

namespace ActorQuery.Inference.Tests;

/// <summary>
/// Constrained decoding through the real engine and sampler: random weights of the default model's shape with its
/// real 1.5k-token vocabulary (the smallest real one; the 151k vocabulary's masks are checked without a model in
/// Tokenization.Tests and timed by the bench). The model knows no JSON, so only the constraint makes the outputs
/// valid: 20 schemas × 10 seeds at temperature 1, each schema's ten seeds as one batch.
/// </summary>
[Collection(TorchGlobalState.Name)]
public class GrammarEngineTests
{
    private static readonly string Repo = FindRepo();
    private static readonly string ModelDir = Path.Combine(Repo, "models", "default");
    private static readonly Lazy<HfTokenizer> Tokenizer = new(() => HfTokenizer.FromPath(ModelDir));
    private static readonly Lazy<JsonElement> Cases = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Repo, "tests", "fixtures", "grammar", "schemas.json"))).RootElement);

    private static string FindRepo()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ActorQuery.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("no ActorQuery.sln above the test binaries");
    }

    private static InferenceEngine Load() => InferenceEngine.Load(new EngineOptions
    {
        ModelPath = ModelDir, DummyWeights = true, DummySeed = 7, Dtype = "float32", Device = "cpu",
        KvCacheBytes = 16L << 20, MaxBatchSequences = 10, MaxTokensPerStep = 256, Tokenizer = Tokenizer.Value,
    });

    private static IReadOnlyList<int> Prompt => Tokenizer.Value.Encode("Reply in JSON:");

    private static SamplingParams Sampled(OutputConstraint c, int seed, int maxTokens = 160) =>
        new() { Temperature = 1f, Seed = seed, MaxNewTokens = maxTokens, Constraint = c };

    /// <summary>Runs every sequence to its end; each sequence's tokens and finish reason.</summary>
    private static Dictionary<long, (List<int> Tokens, FinishReason? Finish)> Drain(IGenerationEngine e)
    {
        var result = new Dictionary<long, (List<int>, FinishReason?)>();
        for (int guard = 0; e.HasPendingWork && guard < 10_000; guard++)
            foreach (var u in e.Step().Updates)
            {
                if (!result.TryGetValue(u.SequenceId, out var r)) result[u.SequenceId] = r = (new List<int>(), null);
                r.Item1.Add(u.TokenId);
                result[u.SequenceId] = (r.Item1, u.Finished);
            }
        return result;
    }

    /// <summary>The text of a finished output, without its end-of-sequence token.</summary>
    private static string Text(List<int> tokens) => Tokenizer.Value.Decode(tokens, skipSpecialTokens: true);

    private static string? Invalidity(string schema, string output)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(output); }
        catch (JsonException e) { return $"not JSON ({e.Message}): {output}"; }
        return JsonSchema.FromText(schema).Evaluate(node).IsValid ? null : $"does not validate: {output}";
    }

    [Fact]
    public void Twenty_schemas_times_ten_seeds_at_temperature_one_all_parse_and_validate()
    {
        using var e = Load();
        var schemas = Cases.Value.GetProperty("schemas").EnumerateArray().Select(x => x.GetRawText()).ToList();
        Assert.Equal(20, schemas.Count);
        var failures = new List<string>();
        int valid = 0;
        foreach (var (schema, i) in schemas.Select((s, i) => (s, i)))
        {
            var c = new OutputConstraint(ConstraintKind.JsonSchema, schema);
            for (int seed = 0; seed < 10; seed++)
                Assert.True(e.TryAdd(new GenerationRequest(i * 100 + seed, Prompt, Sampled(c, seed))).Added);
            foreach (var (id, (tokens, finish)) in Drain(e))
            {
                if (finish != FinishReason.Stop) { failures.Add($"schema {i} seed {id % 100}: {finish} after {tokens.Count} tokens: {Text(tokens)}"); continue; }
                if (Invalidity(schema, Text(tokens)) is { } why) failures.Add($"schema {i} seed {id % 100}: {why}");
                else valid++;
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.Equal(200, valid);
    }

    [Fact]
    public void Regexes_and_choices_at_temperature_one_always_match()
    {
        using var e = Load();
        var regexes = Cases.Value.GetProperty("regexes").EnumerateArray().Select(x => x.GetString()!).ToList();
        foreach (var pattern in regexes)
        {
            for (int seed = 0; seed < 10; seed++)
                e.TryAdd(new GenerationRequest(seed, Prompt, Sampled(new OutputConstraint(ConstraintKind.Regex, pattern), seed)));
            var dotnet = new System.Text.RegularExpressions.Regex($"^(?:{pattern})$");
            foreach (var (_, (tokens, finish)) in Drain(e))
            {
                Assert.Equal(FinishReason.Stop, finish);
                Assert.Matches(dotnet, Text(tokens));
            }
        }
        foreach (var choices in Cases.Value.GetProperty("choices").EnumerateArray().Select(x => x.EnumerateArray().Select(y => y.GetString()!).ToArray()))
        {
            for (int seed = 0; seed < 10; seed++)
                e.TryAdd(new GenerationRequest(seed, Prompt, Sampled(OutputConstraint.Choices(choices), seed)));
            foreach (var (_, (tokens, finish)) in Drain(e))
            {
                Assert.Equal(FinishReason.Stop, finish);
                Assert.Contains(Text(tokens), choices);
            }
        }
    }

    [Fact]
    public void Greedy_decoding_is_held_to_the_schema_too()
    {
        using var e = Load();
        var schema = """{"type":"object","properties":{"answer":{"type":"integer"}},"required":["answer"]}""";
        e.TryAdd(new GenerationRequest(1, Prompt, SamplingParams.Greedy(40) with { Constraint = new(ConstraintKind.JsonSchema, schema) }));
        var (tokens, finish) = Drain(e)[1];
        Assert.Equal(FinishReason.Stop, finish);
        Assert.Null(Invalidity(schema, Text(tokens)));
    }

    [Fact]
    public void Top_k_top_p_and_min_p_mask_before_the_draw_and_stay_valid()
    {
        // These cut the distribution by rank and mass, so the sampler masks first instead of drawing first.
        using var e = Load();
        var schema = Cases.Value.GetProperty("schemas")[9].GetRawText();
        var c = new OutputConstraint(ConstraintKind.JsonSchema, schema);
        for (int seed = 0; seed < 6; seed++)
            e.TryAdd(new GenerationRequest(seed, Prompt, Sampled(c, seed) with
            {
                TopK = seed % 3 == 0 ? 5 : 0, TopP = seed % 3 == 1 ? 0.8f : 1f, MinP = seed % 3 == 2 ? 0.05f : 0f,
            }));
        foreach (var (id, (tokens, finish)) in Drain(e))
        {
            Assert.Equal(FinishReason.Stop, finish);
            Assert.Null(Invalidity(schema, Text(tokens)));
        }
    }

    [Fact]
    public void With_ignore_eos_or_min_tokens_a_complete_output_is_followed_by_end_tokens_only()
    {
        using var e = Load();
        var c = OutputConstraint.Choices(["yes", "no"]);
        e.TryAdd(new GenerationRequest(1, Prompt, Sampled(c, 1, maxTokens: 8) with { IgnoreEos = true }));
        e.TryAdd(new GenerationRequest(2, Prompt, Sampled(c, 2, maxTokens: 8) with { MinNewTokens = 6 }));
        var done = Drain(e);
        Assert.Equal((8, FinishReason.Length), (done[1].Tokens.Count, done[1].Finish));
        Assert.Contains(Text(done[1].Tokens), new[] { "yes", "no" });
        Assert.True(done[2].Tokens.Count >= 6);
        Assert.Contains(Text(done[2].Tokens), new[] { "yes", "no" });
    }

    [Fact]
    public void Max_tokens_reached_mid_object_ends_with_length_and_a_valid_prefix()
    {
        using var e = Load();
        var schema = """{"type":"object","properties":{"a":{"type":"string","minLength":30,"maxLength":40}},"required":["a"]}""";
        e.TryAdd(new GenerationRequest(1, Prompt, Sampled(new OutputConstraint(ConstraintKind.JsonSchema, schema), 3, maxTokens: 6)));
        var (tokens, finish) = Drain(e)[1];
        Assert.Equal(FinishReason.Length, finish);
        Assert.Equal(6, tokens.Count);
        Assert.StartsWith("{\"a\":", Text(tokens));
    }

    [Fact]
    public void A_resumed_constrained_query_replays_its_tokens_and_continues_as_the_uninterrupted_one()
    {
        using var e = Load();
        var c = new OutputConstraint(ConstraintKind.JsonSchema, Cases.Value.GetProperty("schemas")[6].GetRawText());
        e.TryAdd(new GenerationRequest(1, Prompt, Sampled(c, 42)));
        var whole = Drain(e)[1].Tokens;
        Assert.True(whole.Count > 6);
        e.TryAdd(new GenerationRequest(2, Prompt, Sampled(c, 42)) { Generated = whole.Take(5).ToArray() });
        var rest = Drain(e)[2].Tokens;
        Assert.Equal(whole, whole.Take(5).Concat(rest));
    }

    [Fact]
    public void Generated_tokens_that_break_the_constraint_and_unsupported_schemas_are_argument_errors()
    {
        using var e = Load();
        var c = new OutputConstraint(ConstraintKind.Regex, "[0-9]+");
        var letters = Tokenizer.Value.Encode("abc");
        var bad = Assert.Throws<ArgumentException>(() => e.TryAdd(new GenerationRequest(1, Prompt, Sampled(c, 1)) { Generated = letters.ToArray() }));
        Assert.Equal("generated", bad.ParamName);
        var unsupported = Assert.Throws<ArgumentException>(() => e.TryAdd(new GenerationRequest(2, Prompt,
            Sampled(new OutputConstraint(ConstraintKind.JsonSchema, """{"type":"string","format":"email"}"""), 1))));
        Assert.Equal("constraint", unsupported.ParamName);
        Assert.Contains("'format'", unsupported.Message);
        Assert.Equal((0, 0), (e.RunningSequences, e.WaitingSequences));
    }
}
