using System.Diagnostics;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;

namespace ActorQuery.Bench;

/// <summary>
/// <c>engine --prefix-cache</c>: time to first token of a prompt whose first <see cref="Settings.PrefixTokens"/> tokens
/// are in the engine's prefix cache, next to the same length uncached (random tokens each time, so nothing is shared),
/// and their ratio; issue 20's target is 20% or less. Each cached run has a new random suffix, so only the shared prefix
/// (whole KV blocks of it) comes from the cache.
/// </summary>
internal static class PrefixCacheBench
{
    public sealed record Settings(int PrefixTokens, int SuffixTokens, int Repeats);

    public static string Run(InferenceEngine engine, Settings s)
    {
        if (!engine.Scheduler.PrefixCaching) throw new InvalidOperationException("the engine was loaded without prefix caching");
        var rng = new Random(20);
        int[] Random(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(engine.Model.VocabSize)).ToArray();
        int total = s.PrefixTokens + s.SuffixTokens;
        var prefix = Random(s.PrefixTokens);
        long id = 0;
        FirstToken(engine, ++id, Random(total));                  // warm-up (JIT, pool pages)
        FirstToken(engine, ++id, [.. prefix, .. Random(s.SuffixTokens)]);   // puts the prefix in the cache
        var uncached = new List<double>();
        var cached = new List<double>();
        int cachedTokens = 0;
        for (int r = 0; r < s.Repeats; r++)
        {
            var (u, none) = FirstToken(engine, ++id, Random(total));
            if (none != 0) throw new InvalidOperationException($"a random prompt found {none} tokens in the cache");
            uncached.Add(u);
            var (c, hit) = FirstToken(engine, ++id, [.. prefix, .. Random(s.SuffixTokens)]);
            cached.Add(c);
            cachedTokens = hit;
        }
        double uMs = BenchCommand.Median(uncached) * 1e3, cMs = BenchCommand.Median(cached) * 1e3;
        return $"""
            Model: `{engine.Model.Name}` ({engine.Model.Dtype}), {Environment.ProcessorCount} cores, max {engine.MaxTokensPerStep} tokens per step, KV blocks of {engine.KvBlockSize}; medians of {s.Repeats}.

            | prompt tokens | from the prefix cache | time to first token, uncached | cached | cached ÷ uncached |
            |---|---|---|---|---|
            | {total} | {cachedTokens} | {uMs:F0} ms | {cMs:F0} ms | {cMs / uMs:P1} |
            """;
    }

    /// <summary>Runs a fresh sequence to its first token; seconds taken and the prompt tokens the cache gave it.</summary>
    private static (double Seconds, int CachedTokens) FirstToken(InferenceEngine engine, long id, int[] prompt)
    {
        var sampling = new SamplingParams { MaxNewTokens = 1, IgnoreEos = true };
        var sw = Stopwatch.StartNew();
        if (engine.TryAdd(new GenerationRequest(id, prompt, sampling)) is { Added: false } refused)
            throw new InvalidOperationException(refused.Reason ?? "not added");
        while (true)
            foreach (var u in engine.Step().Updates)
                if (u.SequenceId == id) return (sw.Elapsed.TotalSeconds, u.CachedPromptTokens);
    }
}
