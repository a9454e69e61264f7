using static ActorQuery.Contracts.Tests.FakeMachine;

namespace ActorQuery.Contracts.Tests;

public sealed class AvailableMemoryTests
{
    [Fact]
    public void In_a_v2_cgroup_available_is_the_limit_less_usage_without_inactive_file_pages()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2("/app")
            .File("/sys/fs/cgroup/app/memory.max", $"{GiB}\n")
            .File("/sys/fs/cgroup/app/memory.current", $"{700 * MiB}\n")
            .File("/sys/fs/cgroup/app/memory.stat", $"anon {500 * MiB}\nactive_file {100 * MiB}\ninactive_file {100 * MiB}\n");

        Assert.Equal(424 * MiB, m.Read().AvailableBytes);
    }

    [Fact]
    public void In_a_v1_cgroup_available_is_the_limit_less_usage_without_inactive_file_pages()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V1("/x")
            .File("/sys/fs/cgroup/memory/x/memory.limit_in_bytes", $"{GiB}\n")
            .File("/sys/fs/cgroup/memory/x/memory.usage_in_bytes", $"{700 * MiB}\n")
            // inactive_file is this cgroup's own; total_inactive_file includes its children and is the one usage counts.
            .File("/sys/fs/cgroup/memory/x/memory.stat", $"inactive_file {10 * MiB}\ntotal_inactive_file {100 * MiB}\n");

        Assert.Equal(424 * MiB, m.Read().AvailableBytes);
    }

    [Fact]
    public void The_working_set_is_read_in_the_cgroup_that_holds_the_limit()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2("/pod/app")
            .File("/sys/fs/cgroup/pod/app/memory.max", "max\n")
            .File("/sys/fs/cgroup/pod/app/memory.current", $"{100 * MiB}\n")
            .File("/sys/fs/cgroup/pod/memory.max", $"{GiB}\n")
            .File("/sys/fs/cgroup/pod/memory.current", $"{600 * MiB}\n"); // a sibling holds 500 MiB

        Assert.Equal(424 * MiB, m.Read().AvailableBytes);
    }

    [Fact]
    public void A_looser_parent_that_siblings_nearly_fill_bounds_available_too()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2("/pod/app")
            .File("/sys/fs/cgroup/pod/app/memory.max", $"{GiB}\n")
            .File("/sys/fs/cgroup/pod/app/memory.current", $"{100 * MiB}\n")
            .File("/sys/fs/cgroup/pod/memory.max", $"{2 * GiB}\n")
            .File("/sys/fs/cgroup/pod/memory.current", $"{1948 * MiB}\n"); // siblings hold 1848 MiB

        var r = m.Read();

        Assert.Equal((GiB, 100 * MiB), (r.LimitBytes, r.AvailableBytes));
    }

    [Fact]
    public void A_working_set_above_the_limit_leaves_nothing_available()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2("/app")
            .File("/sys/fs/cgroup/app/memory.max", $"{GiB}\n")
            .File("/sys/fs/cgroup/app/memory.current", $"{GiB + 4096}\n");

        Assert.Equal(0, m.Read().AvailableBytes);
    }

    [Fact]
    public void MemAvailable_bounds_available_where_the_machine_is_shorter_than_the_cgroup()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 300 * MiB).V2("/app")
            .File("/sys/fs/cgroup/app/memory.max", $"{8 * GiB}\n")
            .File("/sys/fs/cgroup/app/memory.current", $"{100 * MiB}\n");

        Assert.Equal(300 * MiB, m.Read().AvailableBytes);
    }

    [Fact]
    public void Without_a_cgroup_available_is_MemAvailable()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 5 * GiB);

        Assert.Equal(5 * GiB, m.Read().AvailableBytes);
    }

    [Fact]
    public void The_own_cgroups_working_set_is_usage_less_inactive_file_pages()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V1("/x")
            .File("/sys/fs/cgroup/memory/x/memory.usage_in_bytes", $"{700 * MiB}\n")
            .File("/sys/fs/cgroup/memory/x/memory.stat", $"total_inactive_file {100 * MiB}\n");

        Assert.Equal(600 * MiB, MemoryLimits.CgroupWorkingSetBytes(m.Root));
    }

    [Fact]
    public void Without_a_memory_cgroup_there_is_no_working_set()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB);

        Assert.Null(MemoryLimits.CgroupWorkingSetBytes(m.Root));
    }
}
