namespace ActorQuery.Api.Dashboard;

/// <summary>One second of the dashboard's charts: tokens generated in it, and the mean time to first token and
/// inter-token latency of what was observed in it (null: nothing observed that second).</summary>
public sealed record SecondSample(DateTimeOffset Time, long Tokens, double? TtftMs, double? ItlMs, int Queries);

/// <summary>
/// A ring of per-second samples over the last <see cref="Capacity"/> seconds (10 minutes), filled as tokens stream out
/// and read by the dashboard's charts. Seconds with nothing in them read as zero tokens. Thread-safe: every request
/// records into it.
/// </summary>
public sealed class LiveSeries(TimeProvider? clock = null)
{
    public const int Capacity = 600;

    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly Slot[] _slots = new Slot[Capacity];
    private readonly Lock _lock = new();

    private struct Slot
    {
        public long Second;
        public long Tokens;
        public double TtftSum, ItlSum;
        public int TtftCount, ItlCount;
    }

    public void RecordTokens(int count) => Record(count);

    public void RecordFirstToken(TimeSpan latency) => Record(0, firstToken: latency);

    public void RecordInterToken(TimeSpan latency) => Record(0, interToken: latency);

    /// <summary>One streamed chunk: its tokens and, for its first or a later chunk, the latency that brought it. One lock
    /// per chunk: this runs for every chunk every request streams.</summary>
    public void Record(int tokens, TimeSpan? firstToken = null, TimeSpan? interToken = null)
    {
        long second = _clock.GetUtcNow().ToUnixTimeSeconds();
        lock (_lock)
        {
            ref var slot = ref _slots[second % Capacity];
            if (slot.Second != second) slot = new Slot { Second = second };
            slot.Tokens += tokens;
            if (firstToken is { } f) { slot.TtftSum += f.TotalMilliseconds; slot.TtftCount++; }
            if (interToken is { } i) { slot.ItlSum += i.TotalMilliseconds; slot.ItlCount++; }
        }
    }

    /// <summary>The last <paramref name="seconds"/> whole seconds (the current one excluded, it is still filling), oldest first.</summary>
    public IReadOnlyList<SecondSample> Last(int seconds = Capacity)
    {
        seconds = Math.Clamp(seconds, 0, Capacity - 1);
        long now = _clock.GetUtcNow().ToUnixTimeSeconds();
        var samples = new List<SecondSample>(seconds);
        lock (_lock)
        {
            for (long second = now - seconds; second < now; second++)
            {
                var slot = _slots[second % Capacity];
                var time = DateTimeOffset.FromUnixTimeSeconds(second);
                samples.Add(slot.Second != second
                    ? new SecondSample(time, 0, null, null, 0)
                    : new SecondSample(time, slot.Tokens, slot.TtftCount > 0 ? slot.TtftSum / slot.TtftCount : null,
                        slot.ItlCount > 0 ? slot.ItlSum / slot.ItlCount : null, slot.TtftCount));
            }
        }
        return samples;
    }
}
