using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ActorQuery.Contracts;

/// <summary>Process-level memory readings and the "give it back to the OS" calls that cleanup needs.</summary>
public static partial class NativeMemory
{
    /// <summary>Resident set size in bytes (VmRSS on Linux; WorkingSet64 elsewhere).</summary>
    public static long ResidentBytes()
    {
        if (VmRss("/proc/self/status") is { } bytes) return bytes;
        using var p = Process.GetCurrentProcess();
        return p.WorkingSet64;
    }

    /// <summary>Resident set size of process <paramref name="pid"/> (VmRSS); null where it cannot be read (ended, not
    /// Linux, not permitted).</summary>
    public static long? ResidentBytesOf(int pid) => VmRss($"/proc/{pid}/status");

    private static long? VmRss(string statusFile)
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            foreach (var line in File.ReadLines(statusFile))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>Peak resident set size since start or since <see cref="ResetPeakResident"/> (VmHWM on Linux); null elsewhere.</summary>
    public static long? PeakResidentBytes()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim()) * 1024;
        }
        catch (IOException) { }
        return null;
    }

    /// <summary>Starts <see cref="PeakResidentBytes"/> over from the current resident size (Linux: "5" to
    /// /proc/self/clear_refs). False where that is not possible.</summary>
    public static bool ResetPeakResident()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Physical memory of the machine, or the container's cgroup limit when that is lower.</summary>
    public static long TotalAvailableBytes()
    {
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes; // already honours cgroup limits
        return total > 0 ? total : long.MaxValue;
    }

    /// <summary>
    /// Full GC, then glibc's malloc_trim(0) so that freed native arenas (libtorch's CPU tensors) go back to
    /// the OS; without it RSS stays high after tensors are freed. No-op where glibc is absent.
    /// </summary>
    public static void CollectAndTrim()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect();
        if (OperatingSystem.IsLinux())
        {
            try { malloc_trim(0); }
            catch (DllNotFoundException) { }
            catch (EntryPointNotFoundException) { } // musl
        }
    }

    /// <summary>glibc's mallopt(M_ARENA_MAX, n): at most <paramref name="n"/> malloc arenas from now on (the default is 8 per
    /// core), so that a process with many short-lived threads keeps fewer fragmented arenas. No-op where glibc is absent.</summary>
    public static void LimitMallocArenas(int n)
    {
        if (!OperatingSystem.IsLinux()) return;
        try { mallopt(-8 /* M_ARENA_MAX */, n); }
        catch (DllNotFoundException) { }
        catch (EntryPointNotFoundException) { } // musl
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int mallopt(int parameter, int value);

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int malloc_trim(nuint pad);
}
