namespace ActorQuery.Api.Dtos;

/// <summary>GET /cluster: this node, every member with its roles and reachability, and every worker's state and load.</summary>
/// <param name="Enabled">False when the node runs without Akka.Cluster (then only its own router's workers are listed).</param>
/// <param name="Unreachable">Addresses of members this node cannot reach now.</param>
public sealed record ClusterResponse(
    bool Enabled, string? Self, IReadOnlyList<string> Roles, string? Leader,
    IReadOnlyList<ClusterMember> Members, IReadOnlyList<string> Unreachable, IReadOnlyList<ClusterWorker> Workers);

/// <param name="Status">joining, weakly_up, up, leaving, exiting, down, removed.</param>
public sealed record ClusterMember(string Address, IReadOnlyList<string> Roles, string Status, bool Reachable, bool Self, bool Leader);

/// <summary>A worker anywhere in the cluster, with the load its node last published.</summary>
/// <param name="Address">Its node's cluster address.</param>
/// <param name="Load">Running + queued sequences.</param>
public sealed record ClusterWorker(
    string Address, string Node, string Worker, string State, string? Model, int Running, int Queued, int Load,
    int KvFreeTokens, int KvCapacityTokens, int Restarts, int OomCount, bool Degraded, string? Error, DateTimeOffset? LastSeen);
