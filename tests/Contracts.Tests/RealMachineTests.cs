namespace ActorQuery.Contracts.Tests;

public sealed class RealMachineTests
{
    [Fact]
    public void This_machines_limit_is_positive_and_within_physical_memory()
    {
        var r = MemoryLimits.Read();

        Assert.InRange(r.LimitBytes, 1, PhysicalBytes());
        Assert.InRange(r.AvailableBytes, 0, PhysicalBytes());
        Assert.Contains(r.Source, new[] { "physical memory", "cgroup limit" });
    }

    private static long PhysicalBytes()
    {
        if (!OperatingSystem.IsLinux())
            return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
}
