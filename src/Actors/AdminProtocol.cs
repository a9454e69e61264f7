using ActorQuery.Contracts;

namespace ActorQuery.Actors;

// The admin operations on a node's workers (POST /admin/cleanup, /admin/faults): the HTTP layer asks the node's router
// (INodeAdminClient), the router asks every worker of the node, in this process and in its worker processes, and
// gathers their answers. The worker messages cross to worker processes (ActorQuerySerializer); the router's do not.

/// <summary>Run the memory watchdog's cleanup now (drop what can be rebuilt, collect, return freed memory to the OS) and
/// answer <see cref="WorkerCleanedUp"/>. Crosses to worker processes.</summary>
public sealed record CleanupWorker
{
    public static readonly CleanupWorker Instance = new();
    private CleanupWorker() { }
}

/// <summary>A worker's cleanup. The bytes are its process's (VmRSS and the managed heap, before and after): the workers of
/// one process share them, and the second one's cleanup finds less to free.</summary>
/// <param name="State">The worker's state (<see cref="WorkerState"/>, lower case); a failed or stopped worker has no
/// engine, and only its process is collected.</param>
public sealed record WorkerCleanedUp(string Worker, string Node, int ProcessId, string State,
    long ResidentBeforeBytes, long ResidentAfterBytes, long ManagedBeforeBytes, long ManagedAfterBytes)
{
    public long FreedBytes => Math.Max(0, ResidentBeforeBytes - ResidentAfterBytes);
}

/// <summary>Arm these step faults in place of the ones armed (a field at 0 disarms it; a hang counts from now) and answer
/// <see cref="FaultsReported"/>. Crosses to worker processes.</summary>
public sealed record ArmFaults(LiveFaults Faults);

/// <summary>Answer <see cref="FaultsReported"/> with the faults armed now. Crosses to worker processes.</summary>
public sealed record GetFaults
{
    public static readonly GetFaults Instance = new();
    private GetFaults() { }
}

/// <summary>A worker's armed faults.</summary>
/// <param name="Faults">Null: the worker's engines cannot inject faults (its host did not wrap them).</param>
/// <param name="Steps">The worker's engine steps so far (what <see cref="LiveFaults.HangAtStep"/> counts).</param>
/// <param name="LeakedBytes">Native memory the leak fault holds now.</param>
public sealed record FaultsReported(string Worker, string Node, int ProcessId, LiveFaults? Faults, long Steps, long LeakedBytes);

/// <summary>To the node's router: drop the answer cache and have every worker of the node clean up
/// (<see cref="CleanupWorker"/>); answers <see cref="NodeCleanedUp"/> once every worker answered or after
/// <paramref name="Timeout"/>.</summary>
public sealed record CleanupNode(TimeSpan Timeout) : Akka.Actor.INoSerializationVerificationNeeded;

/// <param name="CacheEntriesDropped">Answers the router's cache held.</param>
/// <param name="Silent">Workers that did not answer within the timeout ("node/worker").</param>
public sealed record NodeCleanedUp(string Node, int CacheEntriesDropped, IReadOnlyList<WorkerCleanedUp> Workers, IReadOnlyList<string> Silent)
    : Akka.Actor.INoSerializationVerificationNeeded;

/// <summary>To the node's router: send every worker of the node <paramref name="Message"/> (<see cref="ArmFaults"/> or
/// <see cref="GetFaults"/>); answers <see cref="NodeFaults"/> once every worker answered or after <paramref name="Timeout"/>.</summary>
public sealed record AskNodeFaults(object Message, TimeSpan Timeout) : Akka.Actor.INoSerializationVerificationNeeded;

/// <param name="Silent">Workers that did not answer within the timeout ("node/worker").</param>
public sealed record NodeFaults(string Node, IReadOnlyList<FaultsReported> Workers, IReadOnlyList<string> Silent)
    : Akka.Actor.INoSerializationVerificationNeeded;

/// <summary>How the HTTP layer runs the admin operations on this node's workers (<c>POST /admin/cleanup</c>,
/// <c>/admin/faults</c>). Each call waits at most <c>timeout</c> for the workers; silent ones are named in the answer.</summary>
public interface INodeAdminClient
{
    Task<NodeCleanedUp> CleanupAsync(TimeSpan timeout, CancellationToken cancellationToken);

    Task<NodeFaults> GetFaultsAsync(TimeSpan timeout, CancellationToken cancellationToken);

    Task<NodeFaults> ArmFaultsAsync(LiveFaults faults, TimeSpan timeout, CancellationToken cancellationToken);
}
