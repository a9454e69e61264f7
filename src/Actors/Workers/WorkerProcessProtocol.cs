using Akka.Actor;

namespace ActorQuery.Actors.Workers;

// Between a node's WorkerProcessSupervisor, the child processes that run its model workers, the node's QueryRouter and
// WorkerDirectory, and the HTTP layer (/health, /admin/workers). Everything here stays on the node: never serialized.

/// <summary>How a worker process ended, as its parent saw it.</summary>
/// <param name="Code">The exit code when it exited by itself.</param>
/// <param name="Signal">The signal that ended it (9 for SIGKILL), when one did.</param>
/// <param name="OomKilled">The kernel's OOM killer ended it (its memory cgroup counted a kill while it ran).</param>
/// <param name="Detail">The last line it wrote to stderr, or why it could not start.</param>
public sealed record WorkerProcessExit(int? Code, int? Signal, bool OomKilled, string? Detail)
{
    public string Describe()
    {
        string how = OomKilled ? $"killed by the kernel's OOM killer (signal {Signal ?? 9})"
            : Signal is { } s ? $"killed by signal {s}{(s == 9 ? " (SIGKILL)" : s == 15 ? " (SIGTERM)" : s == 6 ? " (SIGABRT)" : s == 11 ? " (SIGSEGV)" : "")}"
            : Code is { } c ? $"exited with code {c}" : "could not start";
        return Detail is { Length: > 0 } d ? $"{how}: {d}" : how;
    }
}

/// <summary>A running worker process (the real one is a child <c>actorquery serve</c>; specs use a fake).</summary>
public interface IWorkerProcess
{
    int Pid { get; }
    /// <summary>The Akka.Remote address it joins the cluster at.</summary>
    Address Address { get; }
    /// <summary>Completes when the process has ended.</summary>
    Task<WorkerProcessExit> Exited { get; }
    /// <summary>Resident memory now; null when it cannot be read.</summary>
    long? ResidentBytes { get; }
    /// <summary>Where its own HTTP API listens (its /memory, /health), once it said so; null before.</summary>
    string? Url { get; }
    /// <summary>Asks it to stop gracefully (SIGTERM).</summary>
    void Terminate();
    /// <summary>Ends it now (SIGKILL).</summary>
    void Kill();
}

/// <summary>Starts worker process <c>id</c>. Throws when it cannot start at all.</summary>
public interface IWorkerProcessLauncher
{
    IWorkerProcess Start(int id);
}

/// <summary>Child processes of a node and how they are supervised (bound by the Host from its settings).</summary>
public sealed record WorkerProcessOptions
{
    /// <summary>Worker processes of the node; each runs the node's workers-per-process model workers.</summary>
    public int Count { get; init; } = 1;
    /// <summary>A process whose workers report memory pressure (its watchdog paused: memory past the plan) this long is
    /// recycled before the kernel acts; zero: never.</summary>
    public TimeSpan RecycleAfter { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>A process the cluster finds unreachable this long (hung) is killed and restarted.</summary>
    public TimeSpan UnreachableKillAfter { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>A recycled process gets this long to stop after SIGTERM before SIGKILL.</summary>
    public TimeSpan TerminateGrace { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Starts in a row that end before any worker was ready before the process is given up (failed).</summary>
    public int MaxFailedStarts { get; init; } = 5;
    /// <summary>The id of the first process: a model pool numbers each model's processes on from the others', so that
    /// ids and worker names stay unique on the node.</summary>
    public int FirstId { get; init; } = 1;
    /// <summary>The model the processes serve, in a model pool; null: the node's one model.</summary>
    public string? Model { get; init; }
}

/// <summary>To a WorkerProcessSupervisor: stop every process for good (a model pool unloads the model). Its queries resume
/// elsewhere or wait for the next load; the supervisor reports <see cref="WorkerProcessesChanged"/> with
/// <c>Stopped</c> once every process has ended.</summary>
public sealed record StopWorkerProcesses : INoSerializationVerificationNeeded
{
    public static readonly StopWorkerProcesses Instance = new();
    private StopWorkerProcesses() { }
}

/// <summary>To a WorkerProcessSupervisor: drain every worker of its processes (they finish their queries and take no new
/// ones), so that a model pool can unload the model once they are idle while another model waits for its room.</summary>
public sealed record DrainWorkerProcesses : INoSerializationVerificationNeeded
{
    public static readonly DrainWorkerProcesses Instance = new();
    private DrainWorkerProcesses() { }
}

/// <summary>From a WorkerProcessSupervisor to whoever asked for reports (a model pool), when its processes' sum changes.</summary>
/// <param name="Ready">Some worker in them is ready.</param>
/// <param name="Busy">Some worker in them runs or holds a query.</param>
/// <param name="Failed">Every process was given up; <paramref name="Error"/> says why.</param>
/// <param name="Stopped">After <see cref="StopWorkerProcesses"/>: every process has ended.</param>
/// <param name="ResidentBytes">The processes' resident memory together, where it can be read.</param>
public sealed record WorkerProcessesChanged(string? Model, bool Ready, bool Busy, bool Failed, bool Stopped, string? Error, long? ResidentBytes)
    : INoSerializationVerificationNeeded;

/// <summary>To a QueryRouter: workers of <paramref name="Source"/> (a worker process) are coming, at
/// <paramref name="Node"/> once it is known; hold queries for them instead of refusing that no model is loaded. The
/// expectation ends when a worker at <paramref name="Node"/> reports, or with <paramref name="Expected"/> false (the
/// process was given up).
/// <paramref name="Model"/>: the model they serve, in a model pool (null: any model).</summary>
public sealed record WorkersExpected(string Source, Address? Node, bool Expected, string Detail, string? Model = null) : INoSerializationVerificationNeeded;

/// <summary>To a WorkerDirectory: the worker process at <paramref name="Node"/> is gone or going (it exited, or it is being
/// recycled); its workers leave the routing now, and its late reports are ignored.</summary>
public sealed record WorkerProcessLost(Address Node, string Reason) : INoSerializationVerificationNeeded;

/// <summary>Asks the WorkerProcessSupervisor for a <see cref="WorkerProcessesView"/>.</summary>
public sealed record GetWorkerProcesses : INoSerializationVerificationNeeded
{
    public static readonly GetWorkerProcesses Instance = new();
    private GetWorkerProcesses() { }
}

/// <summary>Recycle a worker process: <paramref name="Id"/> is its number ("1") or the name of one of its workers
/// ("worker-1"). Replies <see cref="RecycleStarted"/> or <see cref="RecycleRefused"/>.</summary>
public sealed record RecycleWorkerProcess(string Id, string Reason) : INoSerializationVerificationNeeded;

public sealed record RecycleStarted(WorkerProcessInfo Process) : INoSerializationVerificationNeeded;

/// <param name="NotFound">No process has that id (404); otherwise it exists but cannot be recycled now (409).</param>
public sealed record RecycleRefused(string Reason, bool NotFound) : INoSerializationVerificationNeeded;

/// <summary>One worker process as /health shows it.</summary>
/// <param name="State">starting, ready, recycling, restarting, failed.</param>
/// <param name="Restarts">Times it was started again after it ended.</param>
/// <param name="LastExit">How it ended last; null while it never ended.</param>
public sealed record WorkerProcessInfo(
    int Id, int? Pid, string State, int Restarts, string? Address, string? Url, DateTimeOffset? StartedAt, long? ResidentBytes,
    IReadOnlyList<string> Workers, WorkerProcessExitInfo? LastExit, string? Error);

public sealed record WorkerProcessExitInfo(int? Code, int? Signal, bool OomKilled, string Reason, DateTimeOffset At);

public sealed record WorkerProcessesView(IReadOnlyList<WorkerProcessInfo> Processes) : INoSerializationVerificationNeeded;

/// <summary>How the HTTP layer reads and recycles the node's worker processes (registered by the Host when it runs them).</summary>
public interface IWorkerProcessClient
{
    Task<WorkerProcessesView> GetAsync(TimeSpan timeout, CancellationToken cancellationToken);
    /// <returns><see cref="RecycleStarted"/> or <see cref="RecycleRefused"/>.</returns>
    Task<object> RecycleAsync(string id, string reason, TimeSpan timeout, CancellationToken cancellationToken);
}
