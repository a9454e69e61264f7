using ActorQuery.Actors;
using ActorQuery.Api.Dtos;
using ActorQuery.Contracts;

namespace ActorQuery.Api.Endpoints;

/// <summary>Builds GET /memory's answer from the router's status: the watchdog's last reading and the workers' own memory.</summary>
internal static class MemoryReports
{
    public static MemoryResponse From(RouterStatus status)
    {
        var m = status.Memory;
        var local = status.Workers.Where(w => w.Node == status.Node).ToList();
        var kv = Kv(local);
        var c = status.Cache;
        return new MemoryResponse(status.Node, Summary(m, kv),
            m is null ? null : new MemoryLimitReport(m.LimitBytes, m.LimitSource, m.Utilization, m.BudgetBytes,
                m.Device is { } d ? new DeviceLimitReport(d.Source, d.TotalBytes, d.BudgetBytes, m.DeviceBytes) : null),
            m is null ? null : new MemoryPlanReport(m.HeldBytes, m.WeightBytes, m.LoadOverheadBytes, m.ActivationPeakBytes, m.KvCacheBytes,
                LoadingShare(m), m.PlannedBytes),
            m is null ? null : new MemoryActualReport(m.ResidentBytes, m.ManagedBytes, m.DeviceBytes, m.UnaccountedBytes, m.HeadroomBytes),
            kv,
            m is null ? null : new WatchdogReport(StateName(m.State), m.Reason, m.CleanupMark, m.PauseMark, m.ShedMark,
                m.CleanupAtBytes, m.PauseAtBytes, m.ShedAtBytes, (long)m.ReadEvery.TotalMilliseconds, m.Cleanups, m.Pauses, m.Sheds, m.At),
            status.Workers.Select(Worker).ToList(),
            new CacheReport(c.Entries, c.Bytes, c.Hits, c.Misses));
    }

    public static string StateName(MemoryState s) => s.ToString().ToLowerInvariant();

    /// <summary>The part of the plan that is whole budget shares of workers still loading (the watchdog counts those
    /// until a worker reports its own plan), so that the plan's terms add up to its total.</summary>
    public static long LoadingShare(MemoryStatus m) =>
        Math.Max(0, m.PlannedBytes - m.HeldBytes - m.WeightBytes - m.LoadOverheadBytes - m.ActivationPeakBytes - m.KvCacheBytes);

    /// <summary>The KV caches of <paramref name="workers"/>, summed. Used tokens come from the bytes the live sequences
    /// hold; a worker that reports no engine memory counts capacity less free.</summary>
    public static KvReport Kv(IReadOnlyList<WorkerStatus> workers)
    {
        long capacity = 0, free = 0, used = 0, capacityBytes = 0, usedBytes = 0;
        var perToken = new HashSet<long>();
        foreach (var w in workers)
        {
            capacity += w.KvCapacityTokens;
            free += w.KvFreeTokens;
            if (w.Memory is { KvBytesPerToken: > 0 } e)
            {
                used += e.KvUsedBytes / e.KvBytesPerToken;
                perToken.Add(e.KvBytesPerToken);
            }
            else used += Math.Max(0, w.KvCapacityTokens - w.KvFreeTokens);
            capacityBytes += w.Memory?.KvCacheBytes ?? 0;
            usedBytes += w.Memory?.KvUsedBytes ?? 0;
        }
        return new KvReport(capacity, used, free, capacityBytes, usedBytes, capacityBytes - usedBytes,
            perToken.Count == 1 ? perToken.Single() : null);
    }

    private static WorkerMemory Worker(WorkerStatus w)
    {
        var e = w.Memory ?? default;
        return new WorkerMemory(w.Worker, w.Node, w.State.ToString().ToLowerInvariant(), w.Device, w.MemoryPressure,
            e.WeightBytes, e.LoadOverheadBytes, e.ActivationPeakBytes, e.KvCacheBytes, e.KvUsedBytes,
            w.KvCapacityTokens, w.KvFreeTokens, w.KvBlockSize, e.OnDevice,
            w.OomCount, w.LastOom, w.Degraded, w.DegradedReason);
    }

    /// <summary>"resident 1.32 GiB of the cgroup limit 1.6 GiB: plan 1.44 GiB (runtime 210 MiB, weights 942 MiB, activations
    /// 38 MiB, KV 262 MiB), headroom 290 MiB; watchdog normal".</summary>
    public static string Summary(MemoryStatus? m, KvReport kv)
    {
        string tokens = $"KV {kv.UsedTokens} of {kv.CapacityTokens} tokens in use";
        if (m is null) return $"no memory reading (the watchdog is off); {tokens}";
        static string F(long b) => MemorySize.Format(b);
        var terms = new List<string> { $"runtime {F(m.HeldBytes)}", $"weights {F(m.WeightBytes)}" };
        if (m.LoadOverheadBytes > 0) terms.Add($"load overhead {F(m.LoadOverheadBytes)}");
        terms.Add($"activations {F(m.ActivationPeakBytes)}");
        terms.Add($"KV {F(m.KvCacheBytes)}");
        if (LoadingShare(m) is > 0 and var loading) terms.Add($"loading {F(loading)}");
        string s = $"resident {F(m.ResidentBytes)} of the {m.LimitSource} {F(m.LimitBytes)}: plan {F(m.PlannedBytes)} ({string.Join(", ", terms)}), "
                   + $"headroom {F(m.HeadroomBytes)}; {tokens}; watchdog {StateName(m.State)}";
        return m.Reason is null ? s : $"{s}: {m.Reason}";
    }
}
