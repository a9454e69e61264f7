namespace ActorQuery.Actors.Cluster;

/// <summary>How a node joins the cluster (bound by the Host from ActorQuery:Cluster:*).</summary>
public sealed record ClusterNodeOptions
{
    public const string GatewayRole = "gateway";
    public const string WorkerRole = "worker";

    /// <summary>gateway (HTTP + QueryRouter), worker (model workers), or both (the default: a single node does everything).</summary>
    public IReadOnlyList<string> Roles { get; init; } = [GatewayRole, WorkerRole];
    /// <summary>Address Akka.Remote binds to.</summary>
    public string Hostname { get; init; } = "127.0.0.1";
    /// <summary>Remoting port; 0 picks a free one (fine for a node that no other node names as its seed).</summary>
    public int Port { get; init; }
    /// <summary>Address other nodes reach this one at, when it differs from <see cref="Hostname"/> (containers, NAT).</summary>
    public string? PublicHostname { get; init; }
    /// <summary>Seed node addresses (akka.tcp://SYSTEM@HOST:PORT); none and no bootstrap: the node joins itself (a cluster of one).</summary>
    public IReadOnlyList<string> SeedNodes { get; init; } = [];
    /// <summary>Coalescing window of load-only worker reports (running, queued, free KV) on the pub/sub topic.</summary>
    public TimeSpan LoadPublishInterval { get; init; } = TimeSpan.FromMilliseconds(100);
    /// <summary>Every worker's status is re-published this often, so that late-joining gateways learn about it.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>TLS with mutual authentication on the remoting (addresses become akka.ssl.tcp://); null: plain TCP.</summary>
    public ClusterTlsOptions? Tls { get; init; }

    public bool IsGateway => Roles.Contains(GatewayRole, StringComparer.OrdinalIgnoreCase);
    public bool IsWorker => Roles.Contains(WorkerRole, StringComparer.OrdinalIgnoreCase);
}
