using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;

namespace ActorQuery.Inference.Tests;

/// <summary>Prefix caching on the real engine: a cache hit skips work, never changes an answer.</summary>
[Collection(TorchGlobalState.Name)]
public class PrefixCacheEngineTests
{
    // A small step budget, so that a prompt computed whole is prefilled in other chunks than its uncached rest.
    private static InferenceEngine Load(string model, bool prefixCaching, int maxTokensPerStep = 8) =>
        InferenceEngine.Load(new EngineOptions
        {
            ModelPath = Fixtures.Dir(model), Dtype = "float32", Device = "cpu", MaxTokensPerStep = maxTokensPerStep, PrefixCaching = prefixCaching,
        });

    /// <summary>A prompt of <paramref name="length"/> tokens from the fixture cases' ids.</summary>
    private static int[] Prompt(string model, int length, int salt = 0)
    {
        var ids = Fixtures.Cases(model).SelectMany(c => c.InputIds).ToArray();
        return Enumerable.Range(0, length).Select(i => ids[(i * 7 + salt) % ids.Length]).ToArray();
    }

    private static (List<int> Tokens, List<float> Logprobs, int Cached) Run(InferenceEngine e, long id, int[] prompt)
    {
        var p = SamplingParams.Greedy(12) with { IgnoreEos = true, Logprobs = true };
        Assert.True(e.TryAdd(new GenerationRequest(id, prompt, p)).Added);
        var tokens = new List<int>();
        var logprobs = new List<float>();
        int cached = -1;
        while (e.HasPendingWork)
            foreach (var u in e.Step().Updates)
            {
                tokens.Add(u.TokenId);
                logprobs.Add(u.Logprob!.Logprob);
                cached = u.CachedPromptTokens;
            }
        return (tokens, logprobs, cached);
    }

    [Theory]
    [InlineData("qwen2-tiny-f32")]
    [InlineData("llama3-tiny-f32")]
    public void A_prompt_whose_prefix_comes_from_the_cache_gets_the_same_greedy_tokens_and_logprobs_as_without(string model)
    {
        var prompt = Prompt(model, 53);
        using var off = Load(model, prefixCaching: false);
        var reference = Run(off, 1, prompt);
        Assert.Equal(0, reference.Cached);
        Assert.Equal(0, off.KvBlocksCached);

        using var on = Load(model, prefixCaching: true);
        var miss = Run(on, 1, prompt);
        var hit = Run(on, 2, prompt);
        Assert.Equal(0, miss.Cached);
        Assert.Equal(48, hit.Cached);                      // three blocks of 16; the last 5 tokens are computed
        Assert.Equal(reference.Tokens, miss.Tokens);
        Assert.Equal(reference.Tokens, hit.Tokens);
        Assert.Equal(reference.Logprobs, hit.Logprobs);    // bit for bit

        // The same prefix, another ending: only the shared blocks come from the cache, the answer is the uncached one.
        var other = prompt[..40].Concat(Prompt(model, 20, salt: 3)).ToArray();
        var otherHit = Run(on, 3, other);
        Assert.Equal(32, otherHit.Cached);
        var otherReference = Run(off, 3, other);
        Assert.Equal(otherReference.Tokens, otherHit.Tokens);
        Assert.Equal(otherReference.Logprobs, otherHit.Logprobs);
        Assert.Equal(on.KvBlocksTotal, on.KvBlocksFree);   // cached, but free to take
    }

    [Fact]
    public void Sequences_sharing_one_new_prompt_get_the_answer_each_gets_alone_and_prefill_it_once()
    {
        const string model = "qwen2-tiny-f32";
        var prompt = Prompt(model, 70);
        using var off = Load(model, prefixCaching: false);
        var alone = Run(off, 1, prompt);

        // A step budget that would hold all four prompts: only the waiting rule keeps the last three from prefilling too.
        using var on = Load(model, prefixCaching: true, maxTokensPerStep: 512);
        var p = SamplingParams.Greedy(12) with { IgnoreEos = true, Logprobs = true };
        for (long id = 1; id <= 4; id++) Assert.True(on.TryAdd(new GenerationRequest(id, prompt, p)).Added);
        var tokens = new Dictionary<long, List<int>>();
        var cached = new Dictionary<long, int>();
        while (on.HasPendingWork)
            foreach (var u in on.Step().Updates)
            {
                (tokens.TryGetValue(u.SequenceId, out var l) ? l : tokens[u.SequenceId] = new()).Add(u.TokenId);
                cached[u.SequenceId] = u.CachedPromptTokens;
            }
        Assert.All(tokens.Values, t => Assert.Equal(alone.Tokens, t));
        Assert.Equal([0, 64, 64, 64], cached.OrderBy(kv => kv.Key).Select(kv => kv.Value).ToArray());
    }
}
