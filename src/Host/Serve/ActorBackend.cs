using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using ActorQuery.Contracts;
using ActorQuery.Actors;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Hosting;
using ActorQuery.Actors.Memory;
using ActorQuery.Actors.Workers;
using ActorQuery.Api;
using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Memory;
using ActorQuery.Tokenization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQuery.Host.Serve;

/// <summary>
/// The real backend: the model folder's tokenizer for the API, and this node's QueryRouter, model workers
/// (ModelSupervisor → ModelActor over the TorchSharp engine) and MemoryWatchdog on Akka.
/// The node is an Akka.Cluster member (ActorQuery:Cluster: roles, remoting, seed nodes; alone it joins itself).
/// Every setting is defined and checked once in <see cref="ServeSettings"/>; the main ones arrive in
/// <see cref="ServeOptions"/>, the finer ones (ActorQuery:Router:*, Workers:*, Watchdog:*, Faults:*) bind onto
/// <see cref="ActorQueryNodeOptions"/> from the same configuration, and a main setting fills the record field it names.
/// </summary>
internal sealed class ActorBackend : IServeBackend
{
    private HfTokenizer? _tokenizer;
    private NodeMemoryPlan? _plan;
    private IReadOnlyList<PooledModel>? _pool;

    /// <summary>Set when the first start of a worker process was refused (its plan or options, exit code 2): the serve
    /// command prints it and exits with code 2, as a refusal in this process does.</summary>
    public static string? WorkerStartFailure { get; private set; }

    /// <summary>This node runs its model workers in child processes (it is not one of those itself).</summary>
    private static bool SpawnsWorkers(ServeOptions o) =>
        WorkerProcessRole.Current is null && o.WorkerProcesses > 0 && o.WorkersPerNode > 0 && o.Cluster.RoleList.Contains("worker");

    /// <summary>The roles this process takes: a node that runs its workers in child processes leaves the worker role to them.</summary>
    private static IReadOnlyList<string> ProcessRoles(ServeOptions o) =>
        SpawnsWorkers(o) ? o.Cluster.RoleList.Where(r => r != ClusterNodeOptions.WorkerRole).ToList() : o.Cluster.RoleList;

    public void ConfigureServices(IServiceCollection services, ServeOptions options)
    {
        if (options.IsPool)
        {
            ConfigurePoolServices(services, options);
            return;
        }
        _tokenizer = LoadTokenizer(options.ModelFolder);
        // Before anything loads: a plan that cannot fit refuses to start here (exit code 2), not under load. A worker
        // process plans its share of the node: the parent's memory is held already, the budget is shared by the
        // workers of all the node's worker processes.
        var role = WorkerProcessRole.Current;
        int workers = ProcessRoles(options).Contains(ClusterNodeOptions.WorkerRole) ? options.WorkersPerNode : 0;
        _plan = NodeMemoryPlan.Make(options, EngineOptions(options), workers, workers * (role?.Count ?? 1), role?.ParentResidentBytes() ?? 0);
        services.AddSingleton<ITokenizer>(_tokenizer);
        services.AddSingleton<IServedModel>(ServedModels.FromFolder(options.ModelFolder, _tokenizer, options.ServedModelName));
        services.AddActorQueryClient();
        services.AddActorQueryClusterView();
        if (SpawnsWorkers(options)) services.AddSingleton<IWorkerProcessClient>(sp => new WorkerProcessClient(sp));
    }

    /// <summary>A model pool: every model's tokenizer for the API, the node's plan without a model of its own (the budget the
    /// pool shares out), and the pool's client. Its models run in worker processes, one set per loaded model.</summary>
    private void ConfigurePoolServices(IServiceCollection services, ServeOptions options)
    {
        if (options.WorkerProcesses < 1 && options.WorkersPerNode > 0 && options.Cluster.RoleList.Contains(ClusterNodeOptions.WorkerRole))
            throw new OptionsException($"{ServeOptions.Section}:WorkerProcesses 0: a model pool runs each model in worker processes of its own "
                                       + "(unloading a model ends them, which returns all its memory); use --worker-processes 1 or more");
        _pool = ModelPoolCatalogue.Build(options);
        var first = _pool[0];
        _tokenizer = (HfTokenizer)first.Served.Tokenizer;
        _plan = NodeMemoryPlan.Make(options, EngineOptions(options) with { ModelPath = first.Folder }, 0, 0);
        services.AddSingleton<ITokenizer>(_tokenizer);
        services.AddSingleton<IServedModel>(first.Served);
        services.AddSingleton<IServedModels>(new ServedModelSet(first.Served, _pool.Select(m => m.Served).ToList(), IsPool: true));
        services.AddActorQueryClient();
        services.AddActorQueryClusterView();
        if (SpawnsWorkers(options))
        {
            services.AddSingleton<IWorkerProcessClient>(sp => new WorkerProcessClient(sp));
            services.AddSingleton<IModelPoolClient>(sp => new ModelPoolClient(sp));
        }
        foreach (var m in _pool)
            if (m.Loads)
                Serilog.Log.Information("model pool: {Name} ({Folder}) reserves {Bytes} ({Terms}){Pinned}, keep-alive {KeepAlive}",
                    m.Entry.Name, m.Folder, MemorySize.Format(m.Entry.ReservationBytes), m.Entry.ReservationTerms, m.Entry.Pinned ? ", pinned" : "",
                    KeepAliveDuration.Format(m.Entry.KeepAlive));
            else Serilog.Log.Information("model pool: {Name} ({Folder}) is loaded by other nodes (--serves): this node routes its queries there", m.Entry.Name, m.Folder);
    }

    public void ConfigureAkka(AkkaConfigurationBuilder akka, IServiceProvider services, ServeOptions options)
    {
        var configuration = services.GetRequiredService<IConfiguration>();
        var node = NodeOptions(configuration, options);
        var plan = _plan!;
        // A pool's server process loads no model itself: its engine factory is never used, the default model's folder keeps it valid.
        var engine = EngineOptions(options) with { ModelPath = _pool?[0].Folder ?? options.ModelFolder, Dtype = plan.Format?.Dtype ?? options.Dtype, Plan = plan.Engine };
        var guard = new StartupPlanGuard(new InferenceEngineFactory(engine, _tokenizer),
            services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>());
        // One fault schedule (and its counters) per worker, so that "first N loads fail" holds for each; every engine is
        // wrapped, so that the leak fault can be armed while the server runs (from the settings file).
        var faultStates = new List<FaultState>();
        IEngineFactory Worker(int _)
        {
            var f = new FaultInjectingEngineFactory(guard, node.Faults, live: true);
            lock (faultStates) faultStates.Add(f.State);
            return f;
        }
        Microsoft.Extensions.Primitives.ChangeToken.OnChange(configuration.GetReloadToken, () =>
        {
            var text = configuration[$"{ServeOptions.Section}:Faults:LeakBytesPerStep"] ?? "0";
            long bytes;
            try { bytes = ByteSize.Parse(text); }
            catch (FormatException e) { Serilog.Log.Warning("Faults:LeakBytesPerStep not applied: {Reason}", e.Message); return; }
            lock (faultStates)
                foreach (var s in faultStates)
                {
                    if (s.LeakBytesPerStep == bytes) continue;
                    Serilog.Log.Warning("fault: each engine step leaks {Bytes} now ({What})", ByteSize.Format(bytes), bytes > 0 ? "armed" : "disarmed, the leak freed");
                    s.LeakBytesPerStep = bytes;
                }
        });
        var cluster = ClusterOptions(options) with { Roles = ProcessRoles(options) };
        if (WorkerProcessRole.Current is { } role)
            // In a pool the models' processes may have different worker counts: number each process's workers from a stride of
            // the most one may have, so that names stay unique on the node.
            node = node with { Workers = node.Workers with { FirstNumber = (role.Id - 1) * (role.ShareBytes is null ? options.WorkersPerNode : ServeOptions.MaxWorkersPerNode) + 1 } };
        // A worker process's plan holds its parent's memory (see NodeMemoryPlan.Make): so does each of its readings.
        var parent = WorkerProcessRole.Current is { ShareBytes: null } r ? r.ParentResidentBytes : (Func<long>?)null;
        akka.AddActorQueryNode(services.GetRequiredService<Config>(), node, cluster, Worker,
            new ProcessMemoryReader(CudaMemory.UsedBytes, parent), budget: plan.Host);
        if (SpawnsWorkers(options))
        {
            if (_pool is not null) AddModelPool(akka, services, options, node, _pool, plan);
            else AddWorkerProcesses(akka, services, options, node);
        }
    }

    /// <summary>The node's model pool: a supervisor of worker processes for each model it loads, inside the node's budget.</summary>
    private static void AddModelPool(AkkaConfigurationBuilder akka, IServiceProvider services, ServeOptions options, ActorQueryNodeOptions node,
        IReadOnlyList<PooledModel> pool, NodeMemoryPlan plan)
    {
        // A load that fails twice in a row fails its queries with the reason; the next query tries again.
        var processes = ProcessOptions(options) with { MaxFailedStarts = 2 };
        var poolOptions = new ModelPoolOptions(pool.Where(m => m.Loads).Select(m => m.Entry).ToList(), plan.Host.BudgetBytes, plan.Host.Describe(),
            options.WorkerProcesses);
        akka.WithActors((system, registry) =>
        {
            var self = Akka.Cluster.Cluster.Get(system);
            var router = registry.Get<Actors.Routing.QueryRouter>();
            var directory = registry.Get<WorkerDirectory>();
            int total = pool.Count * options.WorkerProcesses;
            Props Supervisor(ModelPoolEntry entry, int firstId, IActorRef reportTo)
            {
                var launcher = Launcher(services, options, self, node, total, pool.Single(m => m.Entry.Name == entry.Name));
                // A refused start fails this model's load (the pool reports it), not the server.
                return WorkerProcessSupervisor.Props(processes with { FirstId = firstId, Model = entry.Name }, node.Workers, launcher,
                    router, directory, a => self.Down(a), _ => { }, subscribe: false, reportTo: reportTo);
            }
            var actor = system.ActorOf(ModelPool.Props(poolOptions, Supervisor, router), "model-pool");
            registry.Register<ModelPool>(actor);
            // The pool answers /health's and /admin/workers' questions for all its processes, as one supervisor does.
            registry.Register<WorkerProcessSupervisor>(actor);
        });
    }

    private sealed class ModelPoolClient(IServiceProvider services) : IModelPoolClient
    {
        private async Task<IActorRef> Pool(CancellationToken ct) =>
            await services.GetRequiredService<IRequiredActor<ModelPool>>().GetAsync(ct).ConfigureAwait(false);

        public async Task<ModelPoolView> GetAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
            await (await Pool(cancellationToken).ConfigureAwait(false)).Ask<ModelPoolView>(GetModelPool.Instance, timeout, cancellationToken).ConfigureAwait(false);

        public async Task<ModelPoolAnswer> LoadAsync(string model, TimeSpan timeout, CancellationToken cancellationToken) =>
            await (await Pool(cancellationToken).ConfigureAwait(false)).Ask<ModelPoolAnswer>(new LoadModel(model), timeout, cancellationToken).ConfigureAwait(false);

        public async Task<ModelPoolAnswer> UnloadAsync(string model, TimeSpan timeout, CancellationToken cancellationToken) =>
            await (await Pool(cancellationToken).ConfigureAwait(false)).Ask<ModelPoolAnswer>(new UnloadModel(model), timeout, cancellationToken).ConfigureAwait(false);
    }

    private static WorkerProcessOptions ProcessOptions(ServeOptions o) => new()
    {
        Count = o.WorkerProcesses,
        RecycleAfter = TimeSpan.FromSeconds(o.WorkerRecycleAfterSeconds),
    };

    /// <summary>Starts this node's worker processes (of <paramref name="model"/> in a pool): the node's command line, its
    /// cluster address, and its seeds or else this node as their seed.</summary>
    private static ChildWorkerProcessLauncher Launcher(IServiceProvider services, ServeOptions o, Akka.Cluster.Cluster self,
        ActorQueryNodeOptions node, int count, PooledModel? model = null)
    {
        var seeds = o.Cluster.SeedNodeList.Count > 0 ? string.Join(",", o.Cluster.SeedNodeList) : self.SelfAddress.ToString();
        return new ChildWorkerProcessLauncher(services.GetRequiredService<ServeCommandLine>().Settings, count, o.Cluster.SystemName,
            o.Cluster.Hostname, o.Cluster.PublicHostname, seeds, node.Node, o.LogFolder, model);
    }

    /// <summary>The supervisor of this node's worker processes, started once this node is up so that they join it at once.</summary>
    private static void AddWorkerProcesses(AkkaConfigurationBuilder akka, IServiceProvider services, ServeOptions options, ActorQueryNodeOptions node)
    {
        var lifetime = services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>();
        akka.WithActors((system, registry) =>
        {
            var self = Akka.Cluster.Cluster.Get(system);
            var launcher = Launcher(services, options, self, node, options.WorkerProcesses);
            registry.Register<WorkerProcessSupervisor>(system.ActorOf(WorkerProcessSupervisor.Props(ProcessOptions(options), node.Workers, launcher,
                registry.Get<Actors.Routing.QueryRouter>(), registry.Get<WorkerDirectory>(), a => self.Down(a), reason =>
                {
                    WorkerStartFailure = reason;
                    Serilog.Log.Fatal("worker process refused to start: {Reason}", reason);
                    lifetime.StopApplication();
                }), "worker-processes"));
        });
    }

    private sealed class WorkerProcessClient(IServiceProvider services) : IWorkerProcessClient
    {
        private async Task<IActorRef> Supervisor(CancellationToken ct) =>
            await services.GetRequiredService<IRequiredActor<WorkerProcessSupervisor>>().GetAsync(ct).ConfigureAwait(false);

        public async Task<WorkerProcessesView> GetAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
            await (await Supervisor(cancellationToken).ConfigureAwait(false))
                .Ask<WorkerProcessesView>(GetWorkerProcesses.Instance, timeout, cancellationToken).ConfigureAwait(false);

        public async Task<object> RecycleAsync(string id, string reason, TimeSpan timeout, CancellationToken cancellationToken) =>
            await (await Supervisor(cancellationToken).ConfigureAwait(false))
                .Ask<object>(new RecycleWorkerProcess(id, reason), timeout, cancellationToken).ConfigureAwait(false);
    }

    private static EngineOptions EngineOptions(ServeOptions options) => new()
    {
        ModelPath = options.ModelFolder,
        ServedName = string.IsNullOrEmpty(options.ServedModelName) ? null : options.ServedModelName,
        Dtype = options.Dtype,
        Device = options.Device,
        DummyWeights = options.DummyWeights,
        KvCacheBytes = options.KvCacheBytes ?? new EngineOptions { ModelPath = "" }.KvCacheBytes,
        MaxBatchSequences = options.MaxBatch,
        PrefixCaching = options.PrefixCaching,
    };

    internal static ClusterNodeOptions ClusterOptions(ServeOptions o) => new()
    {
        Roles = o.Cluster.RoleList,
        Hostname = o.Cluster.Hostname,
        Port = o.Cluster.Port,
        PublicHostname = string.IsNullOrWhiteSpace(o.Cluster.PublicHostname) ? null : o.Cluster.PublicHostname,
        SeedNodes = o.Cluster.SeedNodeList,
        LoadPublishInterval = o.Cluster.LoadPublishInterval,
        HeartbeatInterval = o.Cluster.HeartbeatInterval,
    };

    /// <summary>The finer size settings (Faults:LeakBytesPerStep) are written as people write sizes ("12MiB"), which the
    /// binder cannot put into a long: this overlays each with its bytes. The settings were checked already.</summary>
    private static IConfiguration WithSizesInBytes(IConfiguration configuration)
    {
        var section = configuration.GetSection(ServeOptions.Section);
        var bytes = ServeSettings.All.Where(s => s.Kind == SettingKind.Size && s.Key.Contains(':') && section[s.Key] is not null)
            .ToDictionary(s => $"{ServeOptions.Section}:{s.Key}",
                s => (string?)ByteSize.Parse(section[s.Key]!).ToString(System.Globalization.CultureInfo.InvariantCulture));
        return bytes.Count == 0 ? configuration : new ConfigurationBuilder().AddConfiguration(configuration).AddInMemoryCollection(bytes).Build();
    }

    internal static ActorQueryNodeOptions NodeOptions(IConfiguration configuration, ServeOptions o)
    {
        var node = WithSizesInBytes(configuration).GetSection(ServeOptions.Section).Get<ActorQueryNodeOptions>() ?? new ActorQueryNodeOptions();
        return node with
        {
            Router = node.Router with
            {
                MaxInFlight = o.EffectiveMaxInFlight,
                MaxQueue = o.MaxQueue,
                MaxResumes = o.MaxResumes,
                DefaultTimeout = o.DefaultDeadline,
            },
            Workers = node.Workers with
            {
                Count = o.WorkersPerNode, MaxBatch = o.MaxBatch, StepTimeout = TimeSpan.FromSeconds(o.StepTimeoutSeconds),
                ExitProcessOnHungStep = WorkerProcessRole.Current is not null,
            },
            Watchdog = node.Watchdog with
            {
                CleanupMark = o.CleanupMark,
                PauseMark = o.PauseMark,
            },
            Cache = node.Cache with
            {
                Enabled = o.CacheEntries > 0,
                MaxEntries = o.CacheEntries,
                MaxBytes = o.CacheMaxBytesValue,
            },
        };
    }

    private static HfTokenizer LoadTokenizer(string folder)
    {
        try { return HfTokenizer.FromPath(folder); }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or System.Text.Json.JsonException)
        {
            throw new OptionsException($"{ServeOptions.Section}:ModelFolder '{folder}': {e.Message}");
        }
    }
}
