namespace ActorQuery.Contracts.Tests;

/// <summary>
/// A fake root folder holding what <see cref="MemoryLimits"/> reads: /proc/meminfo, /proc/self/cgroup,
/// /proc/self/mountinfo and cgroup files under /sys/fs/cgroup. Deleted on dispose.
/// </summary>
public sealed class FakeMachine : IDisposable
{
    public const long GiB = 1L << 30, MiB = 1L << 20;

    public string Root { get; } = Directory.CreateTempSubdirectory("memory-limits-").FullName;

    public FakeMachine Meminfo(long totalBytes, long availableBytes) =>
        File("/proc/meminfo", $"MemTotal:       {totalBytes / 1024} kB\nMemFree:        {availableBytes / 2048} kB\n" +
                              $"MemAvailable:   {availableBytes / 1024} kB\nBuffers:          1024 kB\n");

    /// <summary>A v2-only machine: "0::path" and cgroup2 on /sys/fs/cgroup with the given mount root.</summary>
    public FakeMachine V2(string cgroupPath, string mountRoot = "/") =>
        File("/proc/self/cgroup", $"0::{cgroupPath}\n")
            .File("/proc/self/mountinfo",
                "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw\n" +
                $"30 22 0:26 {mountRoot} /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n");

    /// <summary>A v1 machine shaped like a real hybrid host: memory on /sys/fs/cgroup/memory, the other controllers
    /// elsewhere, and a v2 hierarchy without memory on /sys/fs/cgroup/unified.</summary>
    public FakeMachine V1(string cgroupPath, string mountRoot = "/") =>
        File("/proc/self/cgroup", $"5:devices:/\n4:memory:{cgroupPath}\n3:cpu,cpuacct:{cgroupPath}\n0::/\n")
            .File("/proc/self/mountinfo",
                "22 1 259:1 / / rw,relatime - ext4 /dev/root rw\n" +
                "31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
                "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n" +
                $"35 31 0:32 {mountRoot} /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
                "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n" +
                "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
            .Folder("/sys/fs/cgroup/unified");

    public FakeMachine File(string path, string text)
    {
        var full = Root + path;
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        System.IO.File.WriteAllText(full, text);
        return this;
    }

    public FakeMachine Folder(string path)
    {
        Directory.CreateDirectory(Root + path);
        return this;
    }

    public MemoryLimitReading Read(long? configuredBytes = null) => MemoryLimits.Read(configuredBytes, Root);

    public void Dispose() => Directory.Delete(Root, recursive: true);
}
