using Akka.Actor;

namespace ActorQuery.Actors.Workers;

// Between a node's ModelPool, the QueryRouters (its own and, for models only it can load, those of other nodes), the
// WorkerProcessSupervisor of each loaded model, and the HTTP layer (/v1/models, /admin/models). ModelActivity,
// ModelUnavailable and ModelCatalogPublished cross nodes (ActorQuerySerializer); the rest stays on the node.

/// <summary>One model a node's pool may load.</summary>
/// <param name="Name">What clients send as <c>model</c>.</param>
/// <param name="Folder">Its Hugging Face folder (for /admin/models).</param>
/// <param name="ReservationBytes">What it takes of the node's budget while loaded: weights, KV pool, activations and its
/// process (the worker process plans inside exactly this share).</param>
/// <param name="ReservationTerms">How <paramref name="ReservationBytes"/> adds up, for errors and /admin/models.</param>
/// <param name="Pinned">Loaded at start and never unloaded by keep-alive or eviction (<c>--pin</c>).</param>
/// <param name="KeepAlive">Idle time after which it is unloaded; null: never (pinned, or keep-alive -1).</param>
public sealed record ModelPoolEntry(string Name, string Folder, long ReservationBytes, string ReservationTerms, bool Pinned, TimeSpan? KeepAlive);

/// <summary>How a node's pool behaves (bound by the Host from its settings).</summary>
/// <param name="BudgetBytes">What the loaded models may take together: the node's memory budget less the server process.</param>
/// <param name="ProcessesPerModel">Worker processes each loaded model runs in.</param>
public sealed record ModelPoolOptions(IReadOnlyList<ModelPoolEntry> Models, long BudgetBytes, string BudgetTerms, int ProcessesPerModel = 1)
{
    /// <summary>A model whose load cannot get room now waits this long between tries (and for idle models to unload).</summary>
    public TimeSpan Tick { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Retry-After of a request whose model cannot get room.</summary>
    public TimeSpan NoRoomRetryAfter { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>A model counts as idle this long after its workers last reported a query (a report may lag a dispatch).</summary>
    public TimeSpan IdleGrace { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>How often the pool publishes its catalogue to the cluster's routers.</summary>
    public TimeSpan CatalogInterval { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>From a QueryRouter to its node's pool: <paramref name="Live"/> queries of <paramref name="Model"/> are admitted and
/// not ended now. A model with live queries is loaded if it is not, and is never unloaded. <paramref name="KeepAlive"/>: the
/// request's own keep-alive (Ollama's <c>keep_alive</c>: a duration, <see cref="Timeout.InfiniteTimeSpan"/> pinned, zero
/// unload after it); null: the model's.</summary>
public sealed record ModelActivity(string Model, int Live, TimeSpan? KeepAlive);

/// <summary>Published by each pool on <see cref="Cluster.ClusterTopics.Models"/> at start and every few seconds: the models
/// it may load, so that a router elsewhere sends a query for one of them there (<see cref="ModelActivity"/>) rather than
/// refusing it.</summary>
public sealed record ModelCatalogPublished(IActorRef Pool, IReadOnlyList<string> Models);

/// <summary>From a pool to its router: the models it may load, so that a query for one that is not loaded waits for it.</summary>
public sealed record ModelCatalog(IActorRef Pool, IReadOnlyList<string> Models) : INoSerializationVerificationNeeded;

/// <summary>From a pool to its router: <paramref name="Model"/> cannot be served now (its load failed, or no room can be
/// made): the router refuses its waiting queries with <paramref name="Reason"/>.</summary>
public sealed record ModelUnavailable(string Model, string Reason, TimeSpan? RetryAfter);

/// <summary>Load a model now (POST /admin/models/{name}/load). Replies <see cref="ModelPoolAnswer"/>.</summary>
public sealed record LoadModel(string Model) : INoSerializationVerificationNeeded;

/// <summary>Unload a model now (POST /admin/models/{name}/unload), even a pinned one; refused while it runs queries.
/// Replies <see cref="ModelPoolAnswer"/>.</summary>
public sealed record UnloadModel(string Model) : INoSerializationVerificationNeeded;

/// <summary>Replies <see cref="ModelPoolView"/>.</summary>
public sealed record GetModelPool : INoSerializationVerificationNeeded
{
    public static readonly GetModelPool Instance = new();
    private GetModelPool() { }
}

/// <summary>The answer to <see cref="LoadModel"/> and <see cref="UnloadModel"/>: the model after the request, or why not.</summary>
/// <param name="Status">200 done or under way, 404 no such model, 409 not now (busy, loading), 503 no room.</param>
public sealed record ModelPoolAnswer(int Status, string? Error, ModelPoolInfo? Model) : INoSerializationVerificationNeeded;

/// <summary>One model as /v1/models and /admin/models show it.</summary>
/// <param name="State">available, loading, ready, unloading or failed.</param>
/// <param name="ResidentBytes">Its worker processes' resident memory now; null while none runs.</param>
/// <param name="KeepAliveSeconds">Idle seconds before it unloads; null: never.</param>
/// <param name="Live">Queries of it admitted on this node and not ended.</param>
public sealed record ModelPoolInfo(
    string Name, string Folder, string State, string? Error, bool Pinned, double? KeepAliveSeconds, long ReservationBytes,
    string ReservationTerms, long? ResidentBytes, int Live, DateTimeOffset? LoadedAt, DateTimeOffset? LastUsed,
    long Loads, long Unloads, long Evictions, double LoadSeconds);

public sealed record ModelPoolView(IReadOnlyList<ModelPoolInfo> Models, long BudgetBytes, string BudgetTerms, long ReservedBytes)
    : INoSerializationVerificationNeeded;

/// <summary>How the HTTP layer reads and drives the node's model pool (registered by the Host when it runs one).</summary>
public interface IModelPoolClient
{
    Task<ModelPoolView> GetAsync(TimeSpan timeout, CancellationToken cancellationToken);
    Task<ModelPoolAnswer> LoadAsync(string model, TimeSpan timeout, CancellationToken cancellationToken);
    Task<ModelPoolAnswer> UnloadAsync(string model, TimeSpan timeout, CancellationToken cancellationToken);
}
