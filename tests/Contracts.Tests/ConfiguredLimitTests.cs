using static ActorQuery.Contracts.Tests.FakeMachine;

namespace ActorQuery.Contracts.Tests;

public sealed class ConfiguredLimitTests
{
    private static FakeMachine V1Limited(long limit) =>
        new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V1("/x")
            .File("/sys/fs/cgroup/memory/x/memory.limit_in_bytes", $"{limit}\n");

    [Theory]
    [InlineData(512L << 20)]
    [InlineData(1L << 30)] // equal to the cgroup's limit
    public void A_configured_limit_at_or_below_the_cgroups_wins(long configured)
    {
        using var m = V1Limited(GiB);

        var r = m.Read(configured);

        Assert.Equal((configured, "--memory-limit", "ActorQuery:MemoryLimit"), (r.LimitBytes, r.Source, r.Detail));
    }

    [Fact]
    public void A_configured_limit_above_the_cgroups_is_refused_naming_both_sizes_and_the_file()
    {
        using var m = V1Limited(1556925645); // 1.45 GiB

        var e = Assert.Throws<MemoryLimitException>(() => m.Read(2 * GiB));

        Assert.Equal("--memory-limit 2.0 GiB is above the memory cgroup's limit 1.45 GiB " +
                     "(cgroup v1 /sys/fs/cgroup/memory/x/memory.limit_in_bytes); leave it out or lower it", e.Message);
    }

    [Fact]
    public void A_configured_limit_above_physical_memory_is_refused_naming_physical_memory()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB);

        var e = Assert.Throws<MemoryLimitException>(() => m.Read(20 * GiB));

        Assert.Equal("--memory-limit 20.0 GiB is above physical memory 16.0 GiB (/proc/meminfo MemTotal); " +
                     "leave it out or lower it", e.Message);
    }

    [Fact]
    public void A_configured_limit_just_above_the_cgroups_is_refused_in_exact_bytes()
    {
        using var m = V1Limited(GiB);

        var e = Assert.Throws<MemoryLimitException>(() => m.Read(GiB + 4096));

        Assert.Contains($"--memory-limit {GiB + 4096} bytes is above the memory cgroup's limit {GiB} bytes", e.Message);
    }

    [Fact]
    public void A_configured_limit_of_zero_is_refused()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB);

        Assert.Throws<MemoryLimitException>(() => m.Read(0));
    }
}
