using Akka.Actor;

namespace ActorQuery.Actors;

// Between the QueryRouter and the workers (ModelSupervisor → ModelActor), and from the MemoryWatchdog.
// A router gives each dispatch of a query a ticket that is unique per router; the worker tags everything it
// sends back with it, so that a late message from an earlier attempt can never reach the client twice.

/// <summary>Run this query; send its events back to the sender as <see cref="QueryProgress"/>.</summary>
public sealed record RunQuery(long Ticket, QueryRequest Request);

/// <summary>Stop working on a ticket (cancelled, timed out): the sequence is removed at the next step boundary. No reply.
/// Tickets are unique per router, so the worker matches the ticket together with the sender.</summary>
public sealed record CancelRun(long Ticket);

/// <summary>An event of a dispatched query, for the router to pass on.</summary>
public sealed record QueryProgress(long Ticket, QueryEvent Event);

/// <summary>
/// The worker gives a query back without a terminal event (its model failed, is restarting or could not load).
/// <paramref name="TokensSent"/>: tokens of the completion so far, for logs; the router resumes from the tokens it
/// received itself (<see cref="QueryRequest.GeneratedTokenIds"/>), which are the ones its client has.
/// </summary>
public sealed record QueryReturned(long Ticket, string Reason, int TokensSent);

/// <summary>From the watchdog: drop what can be rebuilt, collect garbage, return freed memory to the OS.</summary>
public sealed record CleanupMemory : Akka.Actor.INoSerializationVerificationNeeded
{
    public static readonly CleanupMemory Instance = new();
    private CleanupMemory() { }
}

/// <summary>From the watchdog: memory is near the limit; preempt the newest running sequences (they wait and are
/// recomputed later, nothing is lost), and start no step for <paramref name="HoldSteps"/> (zero: step on). Each step may
/// grow memory (activations, allocator caches, a leak), so holding them keeps the process under the limit while cleanup
/// and admission's pause work; the watchdog renews the hold at every reading above the shed mark, for a bounded time.</summary>
public sealed record ShedLoad(TimeSpan HoldSteps) : Akka.Actor.INoSerializationVerificationNeeded;

/// <summary>From the node's watchdog to its workers: admission on this node is paused for <paramref name="Reason"/>
/// (null: resumed). A worker carries it in its <see cref="WorkerStatus.MemoryPressure"/>, so that gateways elsewhere in
/// the cluster route around it.</summary>
public sealed record MemoryPressure(string? Reason) : Akka.Actor.INoSerializationVerificationNeeded;

/// <summary>From its node's router when the node shuts down: finish the running queries, take no new ones, and say so
/// (<see cref="WorkerState.Draining"/>) so that every gateway routes around it at once. Crosses to worker processes.</summary>
public sealed record DrainWorker
{
    public static readonly DrainWorker Instance = new();
    private DrainWorker() { }
}

/// <summary>Send me your <see cref="WorkerStatus"/> now and whenever it changes (until I terminate).</summary>
public sealed record SubscribeWorkerStatus(IActorRef Subscriber);

/// <summary>Replies with the worker's current <see cref="WorkerStatus"/>.</summary>
public sealed record GetWorkerStatus
{
    public static readonly GetWorkerStatus Instance = new();
    private GetWorkerStatus() { }
}
