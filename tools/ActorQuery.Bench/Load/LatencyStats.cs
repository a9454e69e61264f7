namespace ActorQuery.Bench.Load;

/// <summary>Percentiles and inter-token gaps of the load generator's measurements.</summary>
public static class LatencyStats
{
    /// <summary>
    /// The <paramref name="p"/>-th percentile (0..100) by linear interpolation between the closest ranks (numpy's
    /// default, which vLLM's serving benchmark reports); NaN for no values. Written by hand: ten lines, where a
    /// statistics package would be a dependency for one function.
    /// </summary>
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        if (p is < 0 or > 100 || double.IsNaN(p)) throw new ArgumentOutOfRangeException(nameof(p), p, "must be in [0, 100]");
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        double rank = p / 100 * (sorted.Length - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    /// <summary>
    /// Inter-token latencies of one stream: the gaps between consecutive chunk arrivals (seconds since the request
    /// was sent, in order). The first chunk's time is the time to first token and is not a gap.
    /// </summary>
    public static IEnumerable<double> InterTokenGaps(IReadOnlyList<double> chunkTimes)
    {
        for (int i = 1; i < chunkTimes.Count; i++)
        {
            if (chunkTimes[i] < chunkTimes[i - 1]) throw new ArgumentException("chunk times must be in order", nameof(chunkTimes));
            yield return chunkTimes[i] - chunkTimes[i - 1];
        }
    }
}
