using ActorQuery.Api.Dashboard;

namespace ActorQuery.Api.Tests;

/// <summary>The charts' ring of per-second samples, on a clock the test moves.</summary>
public sealed class LiveSeriesTests
{
    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-12-07T10:00:00Z");

    [Fact]
    public void Each_whole_second_holds_its_tokens_and_mean_latencies_and_quiet_seconds_read_as_zero()
    {
        var clock = new ManualClock(T0.AddMilliseconds(100));
        var series = new LiveSeries(clock);
        series.RecordFirstToken(TimeSpan.FromMilliseconds(40));
        series.RecordFirstToken(TimeSpan.FromMilliseconds(60));
        series.RecordTokens(2);
        series.RecordInterToken(TimeSpan.FromMilliseconds(5));
        series.RecordTokens(3);
        Assert.All(series.Last(3), s => Assert.Equal(0, s.Tokens)); // the current second is still filling

        clock.Now = T0.AddSeconds(2).AddMilliseconds(500);
        series.RecordTokens(7);
        clock.Now = T0.AddSeconds(3);
        var last = series.Last(3);
        Assert.Equal([T0, T0.AddSeconds(1), T0.AddSeconds(2)], last.Select(s => s.Time).ToArray());
        Assert.Equal((5L, 50.0, 5.0, 2), (last[0].Tokens, last[0].TtftMs, last[0].ItlMs, last[0].Queries));
        Assert.Equal((0L, (double?)null, (double?)null), (last[1].Tokens, last[1].TtftMs, last[1].ItlMs));
        Assert.Equal((7L, (double?)null), (last[2].Tokens, last[2].TtftMs));
    }

    [Fact]
    public void Ten_minutes_later_the_ring_has_forgotten_the_second_it_reuses()
    {
        var clock = new ManualClock(T0);
        var series = new LiveSeries(clock);
        series.RecordTokens(9);
        clock.Now = T0.AddSeconds(LiveSeries.Capacity);
        series.RecordTokens(1); // the same slot, ten minutes on
        clock.Now = T0.AddSeconds(LiveSeries.Capacity + 1);
        var all = series.Last();
        Assert.Equal(LiveSeries.Capacity - 1, all.Count);
        Assert.Equal(1, all.Sum(s => s.Tokens));
        Assert.Equal(T0.AddSeconds(LiveSeries.Capacity), all[^1].Time);
    }
}
