namespace ActorQuery.Bench.Load;

/// <summary>One concurrency level of the HTTP benchmark, summarised. Latencies in milliseconds.</summary>
public sealed record LevelSummary(
    int Concurrency, int Requests, int Answered, int Errors, double WallSeconds, long OutputTokens,
    double OutputTokensPerSecond, double RequestsPerSecond,
    double TtftP50Ms, double TtftP99Ms, double ItlP50Ms, double ItlP99Ms, string? FirstError)
{
    /// <summary>
    /// Throughput counts the output tokens of answered requests over the level's wall time (first request sent to
    /// last answer). TTFT is the first chunk with text; ITL pools every gap between consecutive chunks of every
    /// answered stream (a chunk is one token, except where the server holds back half a UTF-8 character).
    /// </summary>
    public static LevelSummary Of(int concurrency, IReadOnlyList<RequestResult> results, double wallSeconds)
    {
        var answered = results.Where(r => r.Outcome == RequestOutcome.Answered).ToList();
        long tokens = answered.Sum(r => (long)r.OutputTokens);
        var ttft = answered.Where(r => r.FirstTokenSeconds is not null).Select(r => r.FirstTokenSeconds!.Value * 1000).ToList();
        var itl = answered.SelectMany(r => LatencyStats.InterTokenGaps(r.ChunkSeconds)).Select(s => s * 1000).ToList();
        var firstError = results.FirstOrDefault(r => r.Outcome != RequestOutcome.Answered);
        return new LevelSummary(
            concurrency, results.Count, answered.Count, results.Count - answered.Count, wallSeconds, tokens,
            wallSeconds > 0 ? tokens / wallSeconds : 0, wallSeconds > 0 ? answered.Count / wallSeconds : 0,
            LatencyStats.Percentile(ttft, 50), LatencyStats.Percentile(ttft, 99),
            LatencyStats.Percentile(itl, 50), LatencyStats.Percentile(itl, 99),
            firstError is null ? null : $"{firstError.Outcome} {firstError.Status}: {firstError.Error}");
    }
}
