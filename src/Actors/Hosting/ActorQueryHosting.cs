using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Microsoft.Extensions.DependencyInjection;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Memory;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Workers;
using ActorQuery.Contracts;

namespace ActorQuery.Actors.Hosting;

/// <summary>
/// Akka.Hosting registration of a node's actors. <c>AddActorQueryNode</c> is the one wiring of a node, for the Host
/// and for every spec; the single <c>AddXxx</c> are its parts. Top-level actors land in the <see cref="ActorRegistry"/>
/// under their class (<c>registry.Get&lt;QueryRouter&gt;()</c>, <c>IRequiredActor&lt;QueryRouter&gt;</c>).
/// The options arrive validated (the Host checks every setting once, at start); nothing here checks them again.
/// </summary>
public static class ActorQueryHosting
{
    /// <summary>
    /// A node: the Akka configuration <paramref name="hocon"/> (hocon/*.hocon as <see cref="HoconFolder"/> loaded them:
    /// the pinned model dispatcher, serializer bindings, split-brain resolver), Akka.Remote over TCP and Akka.Cluster
    /// (roles, seed nodes; TLS with mutual authentication when <see cref="ClusterNodeOptions.Tls"/> is set), then this node's part by its roles. Every node has a QueryRouter (the HTTP layer's entry)
    /// and a <see cref="WorkerDirectory"/>; a gateway's router also sees every worker in the cluster through it. A worker
    /// node runs <see cref="WorkerOptions.Count"/> workers (worker i loading through <paramref name="engines"/>(i)) and
    /// publishes their load. With no seed nodes the node joins itself (a cluster of one).
    /// </summary>
    public static AkkaConfigurationBuilder AddActorQueryNode(this AkkaConfigurationBuilder builder, Config hocon,
        ActorQueryNodeOptions options, ClusterNodeOptions cluster, Func<int, IEngineFactory> engines, IMemoryReader? memory = null,
        bool joinSelfWithoutSeeds = true, MemoryBudget? budget = null)
    {
        builder.AddHocon(hocon, HoconAddMode.Append);
        builder.WithRemoting(cluster.Hostname, cluster.Port, cluster.PublicHostname);
        if (cluster.Tls is { } tls) builder.WithClusterTls(tls);
        builder.WithClustering(new ClusterOptions
        {
            Roles = cluster.Roles.Select(r => r.ToLowerInvariant()).Distinct().ToArray(),
            SeedNodes = cluster.SeedNodes.ToArray(),
        });
        builder.AddQueryRouter(options.Node, options.Router, options.Cache);
        // Every node keeps a directory for /cluster; only a gateway's directory feeds its router with other nodes' workers.
        builder.WithActors((system, registry) => registry.Register<WorkerDirectory>(system.ActorOf(
            WorkerDirectory.Props(cluster.IsGateway ? registry.Get<QueryRouter>() : null), "worker-directory")));
        if (options.Watchdog.Enabled)
            builder.AddMemoryWatchdog(options.Watchdog, budget ?? DefaultBudget(cluster.IsWorker ? options.Workers.Count : 0),
                memory ?? new ProcessMemoryReader());
        if (cluster.IsWorker)
        {
            builder.WithActors((system, registry) => registry.Register<WorkerLoadPublisher>(system.ActorOf(
                WorkerLoadPublisher.Props(cluster.LoadPublishInterval, cluster.HeartbeatInterval), "worker-load-publisher")));
            builder.AddModelWorkers(options.Node, options.Workers, engines);
        }
        if (cluster.SeedNodes.Count == 0 && joinSelfWithoutSeeds)
            builder.AddStartup((system, _) =>
            {
                var self = Akka.Cluster.Cluster.Get(system);
                self.Join(self.SelfAddress);
            });
        return builder;
    }

    public static AkkaConfigurationBuilder AddQueryRouter(this AkkaConfigurationBuilder builder,
        string node, RouterOptions router, CacheOptions cache) =>
        builder.WithActors((system, registry) =>
            registry.Register<QueryRouter>(system.ActorOf(QueryRouter.Props(node, router, cache), "query-router")));

    /// <summary>The watchdog pauses the registered router; add the router first.</summary>
    public static AkkaConfigurationBuilder AddMemoryWatchdog(this AkkaConfigurationBuilder builder,
        WatchdogOptions options, MemoryBudget budget, IMemoryReader memory) =>
        builder.WithActors((system, registry) =>
            registry.Register<MemoryWatchdog>(system.ActorOf(
                MemoryWatchdog.Props(options, budget, memory, registry.Get<QueryRouter>()), "memory-watchdog")));

    /// <summary>A node whose host made no plan: the real limit, the default utilization, what the process holds now.</summary>
    public static MemoryBudget DefaultBudget(int workers)
    {
        var limit = MemoryLimits.Read();
        return new MemoryBudget(limit.LimitBytes, limit.Source, MemoryBudget.DefaultUtilization, NativeMemory.ResidentBytes(),
            limit.AvailableBytes, workers);
    }

    /// <summary>
    /// Workers named <c>worker-1..n</c> (from <see cref="WorkerOptions.FirstNumber"/>), announced to the router and the watchdog when those are registered. Their
    /// dispatcher (<see cref="WorkerOptions.Dispatcher"/>) must be in the node's configuration (hocon/actors.hocon).
    /// </summary>
    public static AkkaConfigurationBuilder AddModelWorkers(this AkkaConfigurationBuilder builder,
        string node, WorkerOptions options, Func<int, IEngineFactory> engines)
    {
        return builder.WithActors((system, registry) =>
        {
            for (int i = 1; i <= options.Count; i++)
            {
                var name = $"worker-{options.FirstNumber + i - 1}";
                var worker = system.ActorOf(ModelSupervisor.Props(name, node, engines(i), options), name);
                if (registry.TryGet<QueryRouter>(out var router)) router.Tell(new RegisterWorker(worker));
                if (registry.TryGet<MemoryWatchdog>(out var watchdog)) watchdog.Tell(new RegisterWorker(worker));
                if (registry.TryGet<WorkerLoadPublisher>(out var publisher)) publisher.Tell(new RegisterWorker(worker));
            }
        });
    }

    /// <summary>
    /// Registers <see cref="IQueryClient"/> and <see cref="INodeAdminClient"/> (for the HTTP layer) over the registered <see cref="QueryRouter"/>. The
    /// router is looked up at the first call, not at registration: the HTTP pipeline is built before Akka.Hosting
    /// has started the actor system.
    /// </summary>
    public static IServiceCollection AddActorQueryClient(this IServiceCollection services) =>
        services.AddSingleton(sp => new LazyRouterClient(sp))
            .AddSingleton<IQueryClient>(sp => sp.GetRequiredService<LazyRouterClient>())
            .AddSingleton<INodeAdminClient>(sp => sp.GetRequiredService<LazyRouterClient>());

    /// <summary>Registers <see cref="IClusterViewClient"/> (for <c>GET /cluster</c>) over the node's <see cref="WorkerDirectory"/>.</summary>
    public static IServiceCollection AddActorQueryClusterView(this IServiceCollection services) =>
        services.AddSingleton<IClusterViewClient>(sp => new DirectoryViewClient(sp));

    private sealed class DirectoryViewClient(IServiceProvider services) : IClusterViewClient
    {
        public async Task<ClusterView> GetViewAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            var directory = await services.GetRequiredService<IRequiredActor<WorkerDirectory>>().GetAsync(cts.Token).ConfigureAwait(false);
            return await directory.Ask<ClusterView>(GetClusterView.Instance, timeout, cancellationToken).ConfigureAwait(false);
        }
    }

    private sealed class LazyRouterClient(IServiceProvider services) : IQueryClient, INodeAdminClient
    {
        private ActorQueryClient? _client;

        private async ValueTask<ActorQueryClient> Client(CancellationToken ct)
        {
            if (_client is not null) return _client;
            var router = await services.GetRequiredService<IRequiredActor<QueryRouter>>().GetAsync(ct).ConfigureAwait(false);
            return _client = new ActorQueryClient(services.GetRequiredService<ActorSystem>(), router);
        }

        public async IAsyncEnumerable<QueryEvent> SubmitAsync(QueryRequest request,
            [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            var client = await Client(cancellationToken).ConfigureAwait(false);
            await foreach (var e in client.SubmitAsync(request, cancellationToken).ConfigureAwait(false)) yield return e;
        }

        public async Task StartDrainingAsync(CancellationToken cancellationToken) =>
            await (await Client(cancellationToken).ConfigureAwait(false)).StartDrainingAsync(cancellationToken).ConfigureAwait(false);

        public async Task AbortAllAsync(string reason, CancellationToken cancellationToken) =>
            await (await Client(cancellationToken).ConfigureAwait(false)).AbortAllAsync(reason, cancellationToken).ConfigureAwait(false);

        public async Task<RouterStatus> GetStatusAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            var client = await Client(cts.Token).ConfigureAwait(false);
            return await client.GetStatusAsync(timeout, cancellationToken).ConfigureAwait(false);
        }

        public async Task<NodeCleanedUp> CleanupAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
            await (await Client(cancellationToken).ConfigureAwait(false)).CleanupAsync(timeout, cancellationToken).ConfigureAwait(false);

        public async Task<NodeFaults> GetFaultsAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
            await (await Client(cancellationToken).ConfigureAwait(false)).GetFaultsAsync(timeout, cancellationToken).ConfigureAwait(false);

        public async Task<NodeFaults> ArmFaultsAsync(LiveFaults faults, TimeSpan timeout, CancellationToken cancellationToken) =>
            await (await Client(cancellationToken).ConfigureAwait(false)).ArmFaultsAsync(faults, timeout, cancellationToken).ConfigureAwait(false);
    }
}
