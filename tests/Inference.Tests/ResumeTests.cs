using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Sampling;

namespace ActorQuery.Inference.Tests;

/// <summary>
/// A query resumed from its prompt and the tokens generated so far (its worker was lost) continues exactly as an
/// uninterrupted run: greedy, seeded sampling and penalties alike, on the real engine over the reference fixtures.
/// </summary>
[Collection(TorchGlobalState.Name)]
public class ResumeTests
{
    private static InferenceEngine Load(string model) =>
        InferenceEngine.Load(new EngineOptions { ModelPath = Fixtures.Dir(model), Dtype = "float32", Device = "cpu", KvCacheBytes = 64L << 20 });

    public static TheoryData<string, string, int> Cases() => new()
    {
        { "qwen2-tiny-f32", "greedy", 9 },
        { "qwen2-tiny-f32", "seeded", 9 },
        { "qwen2-tiny-f32", "seeded", 1 },
        { "qwen2-tiny-f32", "penalties", 5 },
        { "llama3-tiny-f32", "seeded", 13 },
    };

    private static SamplingParams Sampling(string kind) => kind switch
    {
        "greedy" => SamplingParams.Greedy(24) with { IgnoreEos = true },
        "seeded" => new SamplingParams { Temperature = 0.8f, Seed = 1234, MaxNewTokens = 24, IgnoreEos = true },
        // Greedy fixture answers repeat tokens: penalties that did not count the tokens before the cut would change the rest.
        "penalties" => new SamplingParams { Temperature = 0.8f, Seed = 99, TopK = 40, RepetitionPenalty = 1.3f, PresencePenalty = 0.6f,
            FrequencyPenalty = 0.4f, MaxNewTokens = 24, IgnoreEos = true },
        _ => throw new ArgumentException(kind),
    };

    /// <summary>Steps until sequence <paramref name="id"/> has <paramref name="stopAfter"/> tokens (or finished).</summary>
    private static List<int> Generate(InferenceEngine e, long id, int stopAfter = int.MaxValue)
    {
        var tokens = new List<int>();
        for (int guard = 0; guard < 1000 && tokens.Count < stopAfter; guard++)
        {
            var mine = e.Step().Updates.Where(u => u.SequenceId == id).ToList();
            tokens.AddRange(mine.Select(u => u.TokenId));
            if (mine.Any(u => u.Finished is not null)) break;
        }
        return tokens;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_query_interrupted_after_n_tokens_and_continued_from_prompt_plus_generated_gives_the_uninterrupted_tokens(
        string model, string kind, int cut)
    {
        using var e = Load(model);
        var prompt = Fixtures.Cases(model)[0].InputIds;
        var p = Sampling(kind);

        e.TryAdd(new GenerationRequest(1, prompt, p));
        var uninterrupted = Generate(e, 1);
        Assert.Equal(p.MaxNewTokens, uninterrupted.Count);

        e.TryAdd(new GenerationRequest(2, prompt, p));
        var before = Generate(e, 2, stopAfter: cut);
        Assert.True(e.Remove(2));                                        // the worker is lost
        Assert.Equal(cut, before.Count);
        var resumed = new GenerationRequest(3, prompt, p) { Generated = before };
        Assert.True(e.TryAdd(resumed).Added);
        var after = Generate(e, 3);

        Assert.Equal(p.MaxNewTokens - cut, after.Count);                 // only the rest of the budget
        Assert.Equal(uninterrupted, before.Concat(after));
    }

    [Fact]
    public void A_seeded_draw_depends_on_the_seed_and_the_token_index_only()
    {
        Assert.Equal(Sampler.Uniform(7, 3), Sampler.Uniform(7, 3));
        Assert.NotEqual(Sampler.Uniform(7, 3), Sampler.Uniform(7, 4));
        Assert.NotEqual(Sampler.Uniform(7, 3), Sampler.Uniform(8, 3));
        var draws = Enumerable.Range(0, 10_000).Select(i => Sampler.Uniform(42, i)).ToArray();
        Assert.All(draws, u => Assert.InRange(u, 0.0, 1.0 - double.Epsilon));
        Assert.InRange(draws.Average(), 0.48, 0.52);                     // uniform, not stuck
    }

    [Fact]
    public void A_resumed_sequence_that_would_have_no_token_left_is_refused_naming_the_field()
    {
        using var e = Load("qwen2-tiny-f32");
        var prompt = Fixtures.Cases("qwen2-tiny-f32")[0].InputIds;
        var full = new GenerationRequest(1, prompt, SamplingParams.Greedy(2)) { Generated = [5, 6] };
        Assert.Equal("generated", Assert.Throws<ArgumentException>(() => e.TryAdd(full)).ParamName);
    }
}
