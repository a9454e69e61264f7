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
public static class MemoryLimits
{
    public static MemoryLimitReading Read(long? configuredBytes = null, string root = "/")
    {
        long total = NativeMemory.TotalAvailableBytes();
        return configuredBytes is { } c && c < total
            ? new MemoryLimitReading(c, "--memory-limit", "ActorQuery:MemoryLimit", total)
            : new MemoryLimitReading(total, "physical memory", "GC", total);
    }
}
