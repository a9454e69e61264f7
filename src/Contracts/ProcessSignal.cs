using System.Runtime.InteropServices;

namespace ActorQuery.Contracts;

/// <summary>Signals to other processes. Process.Kill sends SIGKILL only; a graceful stop (SIGTERM, which a server answers
/// with its drain and a clean exit) has no managed call, hence libc's kill.</summary>
public static partial class ProcessSignal
{
    public const int Terminate = 15;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false where it could not (no such process,
    /// not permitted, not a Unix system).</summary>
    public static bool Send(int pid, int signal) => !OperatingSystem.IsWindows() && Kill(pid, signal) == 0;

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
