using ActorQuery.Api.Errors;

namespace ActorQuery.Api.Generation;

/// <summary>
/// OpenAI's <c>n</c> and prompt arrays: one request fans out into one query per (prompt, sample), each admitted by the
/// router like any other (so a full queue is still a 429), and bounded here so that one request cannot fill the queue.
/// Choice <c>p × n + j</c> is sample j of prompt p, as OpenAI numbers them.
/// </summary>
internal static class Choices
{
    /// <summary>Most samples per prompt (<c>n</c>).</summary>
    public const int MaxN = 16;
    /// <summary>Most prompts in one /v1/completions request.</summary>
    public const int MaxPrompts = 16;
    /// <summary>Most queries one request may start: prompts × n.</summary>
    public const int MaxSequences = 32;

    /// <summary>The request's n, checked against the number of prompts.</summary>
    public static int ReadN(int? n, int prompts)
    {
        int value = n ?? 1;
        if (value < 1 || value > MaxN) throw ApiException.BadRequest("n", $"must be in [1, {MaxN}]");
        if ((long)value * prompts > MaxSequences)
            throw ApiException.BadRequest("n", $"{prompts} prompts × n {value} = {(long)value * prompts} sequences; at most {MaxSequences} per request");
        return value;
    }

    /// <summary>
    /// The queries of a request: <paramref name="n"/> per prompt job, each with its own query id and, when seeded, the
    /// seed of its sample index (sample 0 keeps the request's seed, so n = 1 answers as before). Queries of the same prompt
    /// share an affinity key, so that the router sends them to one worker, whose cache holds their prompt once.
    /// </summary>
    public static IReadOnlyList<GenerationJob> FanOut(IReadOnlyList<GenerationJob> prompts, int n)
    {
        if (prompts.Count == 1 && n == 1) return prompts;
        var jobs = new List<GenerationJob>(prompts.Count * n);
        for (int p = 0; p < prompts.Count; p++)
        {
            var job = prompts[p];
            for (int j = 0; j < n; j++)
                jobs.Add(job with
                {
                    RequestId = $"{job.RequestId}-{p * n + j}",
                    Sampling = job.Sampling with { Seed = job.Sampling.Seed is { } seed ? SeedOf(seed, j) : null },
                    AffinityKey = n > 1 ? $"{job.RequestId}/{p}" : null,
                });
        }
        return jobs;
    }

    /// <summary>The seed of sample <paramref name="index"/>: the request's own for 0, else a SplitMix64 mix of both, so
    /// that every sample draws its own numbers and the same (seed, index) always draws the same ones.</summary>
    public static long SeedOf(long seed, int index)
    {
        if (index == 0) return seed;
        unchecked
        {
            ulong z = (ulong)seed + 0x9E3779B97F4A7C15UL * (ulong)index;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (long)(z ^ (z >> 31));
        }
    }

    /// <summary>Usage as OpenAI counts it: each prompt's tokens once (and its cached tokens as its first sample met
    /// them), every sample's completion tokens.</summary>
    public static Dtos.UsageDto Usage(IReadOnlyList<Actors.QueryCompleted> completed, int n)
    {
        int prompt = 0, completion = 0, cached = 0;
        for (int i = 0; i < completed.Count; i++)
        {
            if (i % n == 0) { prompt += completed[i].PromptTokens; cached += completed[i].CachedPromptTokens; }
            completion += completed[i].CompletionTokens;
        }
        return Dtos.UsageDto.Of(prompt, completion, cached);
    }
}
