using System.Runtime.InteropServices;

namespace ActorQuery.Bench.Load;

/// <summary>What a benchmark ran on, for its report: CPU model, cores, memory, OS, runtime and the load average.</summary>
public static class MachineInfo
{
    public static string Describe()
    {
        string cpu = ReadProc("/proc/cpuinfo", "model name") ?? RuntimeInformation.ProcessArchitecture.ToString();
        string memory = ReadProc("/proc/meminfo", "MemTotal") is { } kb && long.TryParse(kb.Split(' ')[0], out var k)
            ? $"{k / (1024.0 * 1024):F0} GiB" : $"{GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1L << 30)} GiB";
        return $"{cpu}, {Environment.ProcessorCount} cores, {memory} memory, {RuntimeInformation.OSDescription}, " +
               $"{RuntimeInformation.FrameworkDescription}";
    }

    /// <summary>The 1-, 5- and 15-minute load averages ("1.93 1.40 1.22"), or "n/a" off Linux.</summary>
    public static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "n/a"; }
        catch (UnauthorizedAccessException) { return "n/a"; }
    }

    private static string? ReadProc(string path, string key)
    {
        if (!File.Exists(path)) return null;
        foreach (var line in File.ReadLines(path))
        {
            int colon = line.IndexOf(':');
            if (colon > 0 && line[..colon].Trim() == key) return line[(colon + 1)..].Trim();
        }
        return null;
    }
}
