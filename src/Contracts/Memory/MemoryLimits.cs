using System.Globalization;

namespace ActorQuery.Contracts;

/// <summary>The real memory limit of this process and where it comes from.</summary>
/// <param name="Source">Short name for logs and errors: "physical memory", "cgroup limit" or "--memory-limit".</param>
/// <param name="Detail">Where it was read (the file), for /memory.</param>
/// <param name="AvailableBytes">Memory free for this process to grow into now: the smallest of MemAvailable and, in a
/// limited cgroup, its limit less its working set (usage less inactive file pages).</param>
public sealed record MemoryLimitReading(long LimitBytes, string Source, string Detail, long AvailableBytes);

/// <summary>A configured limit that cannot hold (above the memory cgroup's limit). One line.</summary>
public sealed class MemoryLimitException(string message) : Exception(message);

/// <summary>Reads the real limit: the smallest of physical memory, the memory cgroup's limit and the configured one.</summary>
/// <remarks>Every file is read under <c>root</c> ("/" in production; a fake tree in tests). A missing or unreadable file
/// gives no limit from its source; only a configured limit that cannot hold throws.</remarks>
public static class MemoryLimits
{
    public static MemoryLimitReading Read(long? configuredBytes = null, string root = "/")
    {
        var (physical, physicalDetail, memAvailable) = Physical(root);
        var cgroupLimits = CgroupMemory.Limits(root, physical).ToList();

        long limit = physical;
        string source = "physical memory", detail = physicalDetail;
        // Own level first, so that of equal limits the one closest to the process names the file.
        if (cgroupLimits.MinBy(l => l.Bytes) is { } tightest)
            (limit, source, detail) = (tightest.Bytes, "cgroup limit", tightest.Detail);

        // Every limited level bounds growth, not only the tightest: a parent's looser limit may be nearer its end
        // because siblings use it too.
        long available = memAvailable;
        foreach (var l in cgroupLimits)
            if (l.WorkingSetBytes is { } ws)
                available = Math.Min(available, Math.Max(0, l.Bytes - ws));

        if (configuredBytes is { } c)
        {
            if (c <= 0)
                throw new MemoryLimitException($"--memory-limit {c} is not a size; give one above 0 or leave it out");
            if (c > limit)
            {
                var (asked, real) = Sizes(c, limit);
                string what = source == "cgroup limit" ? "the memory cgroup's limit" : "physical memory";
                throw new MemoryLimitException(
                    $"--memory-limit {asked} is above {what} {real} ({detail}); leave it out or lower it");
            }
            (limit, source, detail) = (c, "--memory-limit", "ActorQuery:MemoryLimit");
        }
        return new MemoryLimitReading(limit, source, detail, Math.Max(0, available));
    }

    /// <summary>The own memory cgroup's working set (usage less inactive file pages), or null where the process has
    /// no memory cgroup or its files cannot be read.</summary>
    public static long? CgroupWorkingSetBytes(string root = "/") => CgroupMemory.OwnWorkingSet(root);

    /// <summary>Kills by the kernel's OOM killer counted by this process's memory cgroups (own and ancestors, summed);
    /// null where no cgroup counts them. Compare two readings: a rise means the kernel killed something under our limits.</summary>
    public static long? OomKillCount(string root = "/") => CgroupMemory.OomKills(root);

    /// <summary>MemTotal and MemAvailable from /proc/meminfo; where that cannot be read (not Linux), the runtime's view.</summary>
    private static (long Total, string Detail, long Available) Physical(string root)
    {
        long? total = null, available = null, free = null;
        var text = CgroupMemory.ReadText(CgroupMemory.Rooted(root, "/proc/meminfo"));
        foreach (var line in text?.Split('\n') ?? [])
        {
            var parts = line.Split(':', 2);
            if (parts.Length != 2) continue;
            long? Kib() => CgroupMemory.ParseLong(parts[1].Trim().Split(' ')[0]) * 1024;
            switch (parts[0])
            {
                case "MemTotal": total = Kib(); break;
                case "MemAvailable": available = Kib(); break;
                case "MemFree": free = Kib(); break;
            }
        }
        if (total is { } t && t > 0)
            return (t, "/proc/meminfo MemTotal", available ?? free ?? t); // MemAvailable is missing only before Linux 3.14

        var gc = GC.GetGCMemoryInfo();
        long gcTotal = gc.TotalAvailableMemoryBytes > 0 ? gc.TotalAvailableMemoryBytes : long.MaxValue;
        return (gcTotal, "GC TotalAvailableMemoryBytes", Math.Max(0, gcTotal - gc.MemoryLoadBytes));
    }

    /// <summary>Both sizes as people read them; exact bytes where the rounded ones would read the same.</summary>
    private static (string Asked, string Real) Sizes(long asked, long real)
    {
        string a = MemorySize.Format(asked), r = MemorySize.Format(real);
        return a != r ? (a, r) : ($"{asked} bytes", $"{real} bytes");
    }
}
