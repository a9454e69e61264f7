using static ActorQuery.Contracts.Tests.FakeMachine;

namespace ActorQuery.Contracts.Tests;

public sealed class CgroupLimitTests
{
    [Fact]
    public void A_v2_limit_in_the_own_cgroup_is_the_limit()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2("/app")
            .File("/sys/fs/cgroup/app/memory.max", $"{GiB}\n");

        var r = m.Read();

        Assert.Equal((GiB, "cgroup limit", "cgroup v2 /sys/fs/cgroup/app/memory.max"), (r.LimitBytes, r.Source, r.Detail));
    }

    [Fact]
    public void A_tighter_v2_limit_in_a_parent_wins_over_the_own_one()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2("/pod/app")
            .File("/sys/fs/cgroup/pod/app/memory.max", $"{4 * GiB}\n")
            .File("/sys/fs/cgroup/pod/memory.max", $"{2 * GiB}\n");

        var r = m.Read();

        Assert.Equal((2 * GiB, "cgroup v2 /sys/fs/cgroup/pod/memory.max"), (r.LimitBytes, r.Detail));
    }

    [Fact]
    public void With_max_at_every_v2_level_physical_memory_is_the_limit()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2("/pod/app")
            .File("/sys/fs/cgroup/pod/app/memory.max", "max\n")
            .File("/sys/fs/cgroup/pod/memory.max", "max\n");

        var r = m.Read();

        Assert.Equal((16 * GiB, "physical memory", "/proc/meminfo MemTotal"), (r.LimitBytes, r.Source, r.Detail));
    }

    [Fact]
    public void A_cgroup_limit_above_physical_memory_is_no_limit()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2("/app")
            .File("/sys/fs/cgroup/app/memory.max", $"{64 * GiB}\n");

        var r = m.Read();

        Assert.Equal((16 * GiB, "physical memory"), (r.LimitBytes, r.Source));
    }

    [Fact]
    public void A_v1_limit_in_bytes_is_the_limit()
    {
        long limit = 1556925645; // 1.45 GiB
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V1("/x")
            .File("/sys/fs/cgroup/memory/x/memory.limit_in_bytes", $"{limit}\n")
            .File("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");

        var r = m.Read();

        Assert.Equal((limit, "cgroup limit", "cgroup v1 /sys/fs/cgroup/memory/x/memory.limit_in_bytes"),
            (r.LimitBytes, r.Source, r.Detail));
    }

    [Fact]
    public void The_v1_no_limit_value_is_no_limit_even_on_a_machine_with_more_memory()
    {
        // Physical memory above the no-limit value itself, so that only reading it as "no limit" leaves physical memory
        // the limit (a limit above physical memory is none anyway).
        long total = long.MaxValue / 1024 * 1024;
        using var m = new FakeMachine().Meminfo(total, 12 * GiB).V1("/x")
            .File("/sys/fs/cgroup/memory/x/memory.limit_in_bytes", "9223372036854771712\n")
            .File("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");

        var r = m.Read();

        Assert.Equal((total, "physical memory"), (r.LimitBytes, r.Source));
    }

    [Fact]
    public void A_v1_hierarchical_memory_limit_counts_where_the_parent_is_out_of_sight()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V1("/docker/abc", mountRoot: "/docker/abc")
            .File("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
            .File("/sys/fs/cgroup/memory/memory.stat",
                $"cache 0\nrss 0\nhierarchical_memory_limit {3 * GiB}\nhierarchical_memsw_limit 9223372036854771712\n");

        var r = m.Read();

        Assert.Equal((3 * GiB, "cgroup limit", "cgroup v1 /sys/fs/cgroup/memory/memory.stat hierarchical_memory_limit"),
            (r.LimitBytes, r.Source, r.Detail));
    }

    [Fact]
    public void A_v1_parent_limit_in_sight_is_named_by_its_own_file_rather_than_the_hierarchical_one()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V1("/x/y")
            .File("/sys/fs/cgroup/memory/x/y/memory.limit_in_bytes", $"{2 * GiB}\n")
            .File("/sys/fs/cgroup/memory/x/y/memory.stat", $"hierarchical_memory_limit {GiB}\n")
            .File("/sys/fs/cgroup/memory/x/memory.limit_in_bytes", $"{GiB}\n");

        var r = m.Read();

        Assert.Equal((GiB, "cgroup v1 /sys/fs/cgroup/memory/x/memory.limit_in_bytes"), (r.LimitBytes, r.Detail));
    }

    [Theory]
    [InlineData("/docker/abc", "/docker/abc", "/sys/fs/cgroup/memory")]     // container mounts its own cgroup
    [InlineData("/", "/docker/abc", "/sys/fs/cgroup/memory")]               // the same under a cgroup namespace
    [InlineData("/docker/abc/app", "/docker/abc", "/sys/fs/cgroup/memory/app")] // a child of the mounted cgroup
    [InlineData("/docker/abc", "/", "/sys/fs/cgroup/memory/docker/abc")]    // host: the whole hierarchy is mounted
    public void A_v1_limit_is_found_whatever_part_of_the_hierarchy_is_mounted(string cgroupPath, string mountRoot, string folder)
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V1(cgroupPath, mountRoot)
            .File(folder + "/memory.limit_in_bytes", $"{GiB}\n");

        var r = m.Read();

        Assert.Equal((GiB, $"cgroup v1 {folder}/memory.limit_in_bytes"), (r.LimitBytes, r.Detail));
    }

    [Theory]
    [InlineData("/kubepods/pod1", "/kubepods/pod1")]
    [InlineData("/", "/kubepods/pod1")]
    public void A_v2_limit_is_found_in_a_container_that_mounts_its_own_cgroup(string cgroupPath, string mountRoot)
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2(cgroupPath, mountRoot)
            .File("/sys/fs/cgroup/memory.max", $"{GiB}\n");

        var r = m.Read();

        Assert.Equal((GiB, "cgroup v2 /sys/fs/cgroup/memory.max"), (r.LimitBytes, r.Detail));
    }

    [Fact]
    public void Without_cgroup_files_physical_memory_is_the_limit()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB).V2("/app").Folder("/sys/fs/cgroup/app");

        var r = m.Read();

        Assert.Equal((16 * GiB, "physical memory", 12 * GiB), (r.LimitBytes, r.Source, r.AvailableBytes));
    }

    [Fact]
    public void Without_mountinfo_a_cgroup_limit_is_not_guessed_from_the_usual_place()
    {
        using var m = new FakeMachine().Meminfo(16 * GiB, 12 * GiB)
            .File("/proc/self/cgroup", "0::/app\n")
            .File("/sys/fs/cgroup/app/memory.max", $"{GiB}\n");

        Assert.Equal("physical memory", m.Read().Source);
    }

    [Fact]
    public void Without_proc_the_runtime_gives_physical_memory()
    {
        using var m = new FakeMachine();

        var r = m.Read();

        Assert.Equal((GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, "physical memory", "GC TotalAvailableMemoryBytes"),
            (r.LimitBytes, r.Source, r.Detail));
    }
}
