using System.Globalization;
using System.Text;

namespace ActorQuery.Contracts;

/// <summary>
/// This process's memory cgroup: where it lives and what it allows, v1 and v2. Hand-written because no NuGet package
/// reads cgroup limits this way (every level up to the mount point, v1's hierarchical limit, the mount's root, all
/// through a root folder that tests can fake), and the runtime's own reading (<see cref="GC.GetGCMemoryInfo()"/>) folds
/// the cgroup into physical memory without saying which one won or where it was read.
/// Every file is optional: one that is missing or unreadable gives no limit, never an exception.
/// </summary>
internal static class CgroupMemory
{
    /// <summary>One level of a hierarchy. <paramref name="Path"/> is as the process sees it (for messages);
    /// <paramref name="Dir"/> is the same folder under the root that is read.</summary>
    internal sealed record Level(int Version, string Path, string Dir);

    /// <summary>A limit found at one level, and that level's working set where it could be read.</summary>
    internal sealed record Limit(long Bytes, string Detail, long? WorkingSetBytes);

    // v1 stores "no limit" as LONG_MAX rounded down to a page (9223372036854771712); anything this large is none.
    private const long V1Unlimited = 1L << 62;

    /// <summary>Every limit below <paramref name="physicalBytes"/> on the way from the process's own cgroup up to each
    /// mount point, own level first, v1 before v2.</summary>
    internal static IEnumerable<Limit> Limits(string root, long physicalBytes)
    {
        foreach (var levels in Hierarchies(root))
        {
            foreach (var level in levels)
            {
                long? bytes = level.Version == 2 ? ReadV2Max(level) : ReadV1Limit(level);
                string file = level.Version == 2 ? "memory.max" : "memory.limit_in_bytes";
                if (bytes is { } b && b < physicalBytes)
                    yield return new Limit(b, $"cgroup v{level.Version} {level.Path}/{file}", WorkingSet(level));
            }
            // The kernel folds every ancestor into the own level's hierarchical_memory_limit, which matters where the
            // ancestors' folders are out of sight (a container that mounts its own cgroup as the mount root). It comes
            // last so that, where the ancestor is in sight, the file that sets the limit is the one named.
            var own = levels[0];
            if (own.Version == 1 && StatValue(own, "hierarchical_memory_limit") is { } h && h < V1Unlimited && h < physicalBytes)
                yield return new Limit(h, $"cgroup v1 {own.Path}/memory.stat hierarchical_memory_limit", WorkingSet(own));
        }
    }

    /// <summary>The own cgroup's working set (usage less inactive file pages), or null where none can be read.</summary>
    internal static long? OwnWorkingSet(string root)
    {
        foreach (var levels in Hierarchies(root))
            if (WorkingSet(levels[0]) is { } ws)
                return ws;
        return null;
    }

    /// <summary>The OOM killer's kills counted by the memory cgroups from the own one up to each mount point, summed
    /// (v2 memory.events, v1 memory.oom_control "oom_kill"); null where no level has the counter. A rise tells that
    /// the kernel killed a process under one of these limits.</summary>
    internal static long? OomKills(string root)
    {
        long? total = null;
        foreach (var levels in Hierarchies(root))
            foreach (var level in levels)
            {
                var text = ReadText(System.IO.Path.Combine(level.Dir, level.Version == 2 ? "memory.events" : "memory.oom_control"));
                if (text is null) continue;
                foreach (var line in text.Split('\n'))
                {
                    var parts = line.Split(' ', 2);
                    if (parts.Length == 2 && parts[0] == "oom_kill" && ParseLong(parts[1]) is { } n) total = (total ?? 0) + n;
                }
            }
        return total;
    }

    /// <summary>Working set as the kernel's OOM decision sees it: inactive file pages are reclaimed before it kills.</summary>
    private static long? WorkingSet(Level level)
    {
        var (usageFile, inactiveKey) = level.Version == 2
            ? ("memory.current", "inactive_file")
            : ("memory.usage_in_bytes", "total_inactive_file");
        if (ParseLong(ReadText(System.IO.Path.Combine(level.Dir, usageFile))) is not { } usage)
            return null;
        return Math.Max(0, usage - (StatValue(level, inactiveKey) ?? 0));
    }

    private static long? ReadV2Max(Level level)
    {
        var text = ReadText(System.IO.Path.Combine(level.Dir, "memory.max"))?.Trim();
        return text == "max" ? null : ParseLong(text);
    }

    private static long? ReadV1Limit(Level level) =>
        ParseLong(ReadText(System.IO.Path.Combine(level.Dir, "memory.limit_in_bytes"))) is { } b && b < V1Unlimited ? b : null;

    private static long? StatValue(Level level, string key)
    {
        var text = ReadText(System.IO.Path.Combine(level.Dir, "memory.stat"));
        if (text is null) return null;
        foreach (var line in text.Split('\n'))
        {
            var parts = line.Split(' ', 2);
            if (parts.Length == 2 && parts[0] == key)
                return ParseLong(parts[1]);
        }
        return null;
    }

    /// <summary>For each memory hierarchy the process belongs to (v1's memory controller, then v2), its levels from the
    /// own cgroup up to the mount point. A hybrid machine has both; the v2 one then carries no memory files.</summary>
    private static IEnumerable<IReadOnlyList<Level>> Hierarchies(string root)
    {
        string? v1Path = null, v2Path = null;
        foreach (var line in Lines(Rooted(root, "/proc/self/cgroup")))
        {
            var parts = line.Split(':', 3); // hierarchy-id:controllers:path
            if (parts.Length != 3) continue;
            if (parts[0] == "0" && parts[1].Length == 0) v2Path = parts[2];
            else if (parts[1].Split(',').Contains("memory")) v1Path = parts[2];
        }
        if (v1Path is null && v2Path is null) yield break;

        var seen = new HashSet<string>(StringComparer.Ordinal);
        var mounts = Mounts(root).ToList();
        foreach (var (version, cgroupPath) in new[] { (1, v1Path), (2, v2Path) })
        {
            if (cgroupPath is null) continue;
            foreach (var m in mounts.Where(m => m.Version == version))
            {
                var own = OwnFolder(cgroupPath, m.Root, m.MountPoint);
                if (own is null || !Directory.Exists(Rooted(root, own)) || !seen.Add(own)) continue;
                yield return Upwards(own, m.MountPoint).Select(p => new Level(version, p, Rooted(root, p))).ToList();
            }
        }
    }

    /// <summary>The own cgroup's folder under a mount. /proc/self/cgroup gives the path from the hierarchy's root, and
    /// mountinfo says which folder of the hierarchy is mounted: "/" on a host, often the container's own cgroup inside
    /// one (then the path reads as that same folder, or as "/" under a cgroup namespace).</summary>
    private static string? OwnFolder(string cgroupPath, string mountRoot, string mountPoint)
    {
        string Under(string relative) => relative is "" or "/" ? mountPoint : mountPoint.TrimEnd('/') + relative;
        if (mountRoot == "/") return Under(cgroupPath);
        if (cgroupPath == mountRoot || cgroupPath == "/") return mountPoint;
        if (cgroupPath.StartsWith(mountRoot + "/", StringComparison.Ordinal)) return Under(cgroupPath[mountRoot.Length..]);
        return null; // this mount shows another part of the hierarchy
    }

    /// <summary>The folder and each parent up to the mount point; nothing above it belongs to this hierarchy's view.</summary>
    private static IEnumerable<string> Upwards(string folder, string mountPoint)
    {
        var stop = mountPoint.TrimEnd('/');
        for (var p = folder.TrimEnd('/'); ; p = p[..p.LastIndexOf('/')])
        {
            yield return p.Length == 0 ? "/" : p;
            if (p.Length <= stop.Length) yield break;
        }
    }

    private sealed record Mount(int Version, string Root, string MountPoint);

    /// <summary>Memory cgroup mounts from mountinfo: "id parent major:minor root mountpoint options [optional...] -
    /// fstype source superoptions".</summary>
    private static IEnumerable<Mount> Mounts(string root)
    {
        foreach (var line in Lines(Rooted(root, "/proc/self/mountinfo")))
        {
            var f = line.Split(' ');
            int dash = Array.IndexOf(f, "-", 6);
            if (f.Length < 5 || dash < 0 || dash + 1 >= f.Length) continue;
            var fsType = f[dash + 1];
            var superOptions = dash + 3 < f.Length ? f[dash + 3].Split(',') : [];
            int version = fsType == "cgroup2" ? 2 : fsType == "cgroup" && superOptions.Contains("memory") ? 1 : 0;
            if (version != 0)
                yield return new Mount(version, Unescape(f[3]), Unescape(f[4]));
        }
    }

    /// <summary>mountinfo writes space, tab, newline and backslash in paths as octal escapes (\040).</summary>
    private static string Unescape(string field)
    {
        if (!field.Contains('\\')) return field;
        var sb = new StringBuilder(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length && IsOctal(field.AsSpan(i + 1, 3)))
            {
                sb.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else sb.Append(field[i]);
        }
        return sb.ToString();
    }

    private static bool IsOctal(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
            if (c is < '0' or > '7') return false;
        return true;
    }

    /// <summary>An absolute path as the process sees it, under the root folder that is read.</summary>
    internal static string Rooted(string root, string path) => root.TrimEnd('/') + path;

    internal static string? ReadText(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    private static IEnumerable<string> Lines(string path) =>
        ReadText(path)?.Split('\n', StringSplitOptions.RemoveEmptyEntries) ?? [];

    internal static long? ParseLong(string? text) =>
        long.TryParse(text?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;
}
