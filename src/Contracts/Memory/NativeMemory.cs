using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ActorQuery.Contracts;

/// <summary>Process-level memory readings and the "give it back to the OS" calls that cleanup needs.</summary>
public static partial class NativeMemory
{
    /// <summary>Resident set size in bytes (VmRSS on Linux; WorkingSet64 elsewhere).</summary>
    public static long ResidentBytes()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                foreach (var line in File.ReadLines("/proc/self/status"))
                    if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                        return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim()) * 1024;
            }
            catch (IOException) { }
        }
        using var p = Process.GetCurrentProcess();
        return p.WorkingSet64;
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

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int malloc_trim(nuint pad);
}
