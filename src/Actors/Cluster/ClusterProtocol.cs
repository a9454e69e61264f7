using Akka.Actor;

namespace ActorQuery.Actors.Cluster;

// How gateways learn about workers on other nodes, and what /cluster shows. Workers' load travels over
// Distributed Pub/Sub (topic WorkerTopic); membership and reachability come from Akka.Cluster itself.

/// <summary>A worker's load and state, published on <see cref="ClusterTopics.Workers"/> when it changes and at every heartbeat.</summary>
/// <param name="Worker">The worker (its ModelSupervisor), with the node's address when it crossed nodes.</param>
public sealed record WorkerLoadPublished(IActorRef Worker, WorkerStatus Status);

/// <summary>
/// To a QueryRouter: every worker at <paramref name="Node"/> is gone (unreachable, downed or left). Queries they held
/// end now: retried elsewhere when no token was sent yet, otherwise failed with <paramref name="Reason"/>.
/// Node-local (from the node's WorkerDirectory), never serialized.
/// </summary>
public sealed record WorkerNodeLost(Address Node, string Reason) : INoSerializationVerificationNeeded;

public static class ClusterTopics
{
    /// <summary>Distributed Pub/Sub topic of <see cref="WorkerLoadPublished"/>.</summary>
    public const string Workers = "actorquery-workers";
    /// <summary>Each model pool's catalogue (<see cref="ActorQuery.Actors.Workers.ModelCatalogPublished"/>).</summary>
    public const string Models = "actorquery-models";
}

/// <summary>Asks the node's WorkerDirectory for a <see cref="ClusterView"/>.</summary>
public sealed record GetClusterView : INoSerializationVerificationNeeded
{
    public static readonly GetClusterView Instance = new();
    private GetClusterView() { }
}

/// <summary>A member as this node sees it.</summary>
/// <param name="Status">Akka's member status: Joining, WeaklyUp, Up, Leaving, Exiting, Down, Removed.</param>
public sealed record ClusterMemberView(string Address, IReadOnlyList<string> Roles, string Status, bool Reachable, bool IsSelf, bool IsLeader);

/// <summary>A worker anywhere in the cluster, as this node's router sees it.</summary>
/// <param name="Address">The worker's node.</param>
/// <param name="LastSeen">When its last load report arrived.</param>
public sealed record ClusterWorkerView(string Address, WorkerStatus Status, DateTimeOffset LastSeen);

/// <summary>What <c>GET /cluster</c> shows: members with roles and reachability, and every worker's state and load.</summary>
public sealed record ClusterView(
    string SelfAddress, IReadOnlyList<string> SelfRoles, string? Leader,
    IReadOnlyList<ClusterMemberView> Members, IReadOnlyList<ClusterWorkerView> Workers) : INoSerializationVerificationNeeded;

/// <summary>How the HTTP layer reads the cluster (registered by the Host when clustering is on).</summary>
public interface IClusterViewClient
{
    Task<ClusterView> GetViewAsync(TimeSpan timeout, CancellationToken cancellationToken);
}
