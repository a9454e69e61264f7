using System.Globalization;
using ActorQuery.Contracts;
using ActorQuery.Actors.Cluster;
using Microsoft.Extensions.Configuration;

namespace ActorQuery.Host.Serve;

/// <summary>
/// The main settings of <c>serve</c>, bound from the "ActorQuery" section: appsettings.json, then environment
/// variables (<c>ACTORQUERY__MAXQUEUE=128</c>), then the command line (<c>--max-queue 128</c>), later winning.
/// Sizes accept suffixes (<c>512MiB</c>, <c>8GiB</c>, <c>2GB</c>) or plain bytes. Keys, flags, limits and help are
/// defined once in <see cref="ServeSettings"/>, which checks every layer before anything binds.
/// </summary>
public sealed class ServeOptions
{
    public const string Section = "ActorQuery";

    /// <summary>Where a setting also exists in the Actors' records, its default is theirs: one value for both.</summary>
    private static readonly ActorQuery.Actors.ActorQueryNodeOptions Node = new();
    private static readonly ActorQuery.Api.ApiOptions Api = new();

    /// <summary>A Hugging Face checkpoint folder (config.json, tokenizer.json, *.safetensors).</summary>
    public string ModelFolder { get; set; } = "models/default";
    /// <summary>The name clients send as <c>model</c>; empty: the folder's name.</summary>
    public string ServedModelName { get; set; } = "";
    /// <summary>A model pool's models, each "NAME=DIR" or "DIR" (named by its folder).</summary>
    public List<string> Models { get; set; } = [];
    /// <summary>A folder whose subfolders are models of the pool, each named by its folder; empty: none.</summary>
    public string ModelsDir { get; set; } = "";
    /// <summary>The pool's model for requests that name none; empty: the first.</summary>
    public string DefaultModel { get; set; } = "";
    /// <summary>Idle time before a pooled model unloads: "DURATION" for all, or "NAME=DURATION"; none: <see cref="DefaultKeepAlive"/>.</summary>
    public List<string> KeepAlive { get; set; } = [];
    /// <summary>Pooled models loaded at start and never unloaded by keep-alive or eviction.</summary>
    public List<string> Pin { get; set; } = [];
    /// <summary>Pooled models this node loads; none: all. It routes queries for the others to nodes that load them.</summary>
    public List<string> Serves { get; set; } = [];
    /// <summary>A pooled model's own values: "NAME:KEY=VALUE", KEY one of <see cref="PerModelKeys"/>.</summary>
    public List<string> ModelOptions { get; set; } = [];

    /// <summary>The settings a pooled model may have its own value of: the command line's flags and their setting keys.</summary>
    public static readonly IReadOnlyDictionary<string, string> PerModelKeys = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["dtype"] = "Dtype", ["workers"] = "WorkersPerNode", ["kv-cache-size"] = "KvCacheSize",
    };

    /// <summary>The value <paramref name="key"/> (a flag name of <see cref="PerModelKeys"/>) has for <paramref name="model"/>:
    /// its own, else null.</summary>
    public string? ModelOption(string model, string key)
    {
        string? value = null;
        foreach (var item in ModelOptions)
        {
            int colon = item.IndexOf(':'), eq = item.IndexOf('=', Math.Max(0, colon));
            if (colon < 0 || eq < 0) continue;
            if (string.Equals(item[..colon].Trim(), model, StringComparison.OrdinalIgnoreCase)
                && string.Equals(item[(colon + 1)..eq].Trim(), key, StringComparison.OrdinalIgnoreCase))
                value = item[(eq + 1)..].Trim();
        }
        return value;
    }

    public static readonly TimeSpan DefaultKeepAlive = TimeSpan.FromMinutes(5);

    /// <summary>This server runs a model pool (several models, loaded on demand); a worker process of a pool serves one.</summary>
    public bool IsPool => WorkerProcessRole.Current is null && (Models.Count > 0 || ModelsDir.Length > 0);
    /// <summary>float32, bfloat16 or auto (DeviceAndDtype.ResolveDtypes: bf16 where the device computes it fast, bf16
    /// weights under float32 arithmetic for a bf16 checkpoint on a CPU without bf16 instructions, else float32).</summary>
    public string Dtype { get; set; } = "auto";
    /// <summary>none or int8: int8 makes <see cref="Dtype"/> int8 (<see cref="From"/>), so that it reaches every place a
    /// dtype does (worker processes, the model pool, the memory plan).</summary>
    public string Quantize { get; set; } = "none";
    /// <summary>cpu, cuda, cuda:N, mps or auto.</summary>
    public string Device { get; set; } = "auto";
    public int WorkersPerNode { get; set; } = Node.Workers.Count;
    /// <summary>The most <see cref="WorkersPerNode"/> may be.</summary>
    public const int MaxWorkersPerNode = 64;
    /// <summary>Child processes that run this node's model workers (each runs <see cref="WorkersPerNode"/>); 0: the
    /// workers run inside the server process.</summary>
    public int WorkerProcesses { get; set; } = new ActorQuery.Actors.Workers.WorkerProcessOptions().Count;
    /// <summary>Seconds an engine step may run while work is pending before its worker counts as hung; 0: never.</summary>
    public double StepTimeoutSeconds { get; set; } = Node.Workers.StepTimeout.TotalSeconds;
    /// <summary>Seconds a worker process may stay past its memory plan (its watchdog paused) before it is recycled; 0: never.</summary>
    public double WorkerRecycleAfterSeconds { get; set; } = new ActorQuery.Actors.Workers.WorkerProcessOptions().RecycleAfter.TotalSeconds;
    /// <summary>The real memory limit; "auto": the smaller of physical memory and the memory cgroup's limit.</summary>
    public string MemoryLimit { get; set; } = "auto";
    /// <summary>Share of the limit the memory plan (weights, activations, KV pool) may use.</summary>
    public double MemoryUtilization { get; set; } = ActorQuery.Contracts.MemoryBudget.DefaultUtilization;
    /// <summary>Above this fraction of the headroom the plan leaves, workers and the answer cache free memory.</summary>
    public double CleanupMark { get; set; } = Node.Watchdog.CleanupMark;
    /// <summary>Above this fraction, the router pauses admission until memory is back under the cleanup mark.</summary>
    public double PauseMark { get; set; } = Node.Watchdog.PauseMark;
    /// <summary>A JSON settings file layered over the environment and re-read when it changes; empty: none.</summary>
    public string SettingsFile { get; set; } = "";
    /// <summary>Queries running at once on this node; 0: <see cref="AutoMaxInFlight"/>.</summary>
    public int MaxInFlight { get; set; }

    /// <summary>What <c>--max-in-flight 0</c> (the default) means: every sequence the node's batches hold (worker processes
    /// × workers × max batch), so that concurrent requests fill the batch rather than wait in the router's queue; at
    /// least the router's own default, for a gateway whose workers are elsewhere.</summary>
    public int AutoMaxInFlight => Math.Max(Node.Router.MaxInFlight,
        Cluster.RoleList.Contains("worker") ? Math.Max(1, WorkerProcesses) * WorkersPerNode * MaxBatch : 0);

    public int EffectiveMaxInFlight => MaxInFlight > 0 ? MaxInFlight : AutoMaxInFlight;
    public int MaxQueue { get; set; } = Node.Router.MaxQueue;
    /// <summary>Times a query is resumed from its generated tokens after its worker was lost; then it fails.</summary>
    public int MaxResumes { get; set; } = Node.Router.MaxResumes;
    public double DefaultDeadlineSeconds { get; set; } = Node.Router.DefaultTimeout.TotalSeconds;
    public int CacheEntries { get; set; } = Node.Cache.MaxEntries;
    public string CacheMaxBytes { get; set; } = ByteSize.Format(Node.Cache.MaxBytes);
    /// <summary>Where Kestrel listens; several separated by ';'.</summary>
    public string Urls { get; set; } = "http://localhost:8000";
    public string LogFolder { get; set; } = "logs";
    /// <summary>Verbose, Debug, Information, Warning, Error or Fatal.</summary>
    public string LogLevel { get; set; } = "Information";
    /// <summary>Where alerts are POSTed as JSON; empty: nowhere.</summary>
    public string AlertWebhook { get; set; } = "";
    public double DrainTimeoutSeconds { get; set; } = 30;
    public string MaxBodyBytes { get; set; } = "1MiB";
    public int DefaultMaxTokens { get; set; } = 256;
    /// <summary>KV-cache bytes each worker's engine holds for all its sequences; "auto": all the memory plan leaves.</summary>
    public string KvCacheSize { get; set; } = "auto";
    /// <summary>Most sequences one worker advances per forward pass.</summary>
    public int MaxBatch { get; set; } = Node.Workers.MaxBatch;
    /// <summary>Random weights of the model folder's config (benchmarks without a download).</summary>
    public bool DummyWeights { get; set; }
    /// <summary>Automatic prefix caching in each worker's engine (<see cref="ActorQuery.Inference.Engine.EngineOptions.PrefixCaching"/>).</summary>
    public bool PrefixCaching { get; set; } = true;
    /// <summary>Akka.Cluster: roles, remoting address, seed nodes (section ActorQuery:Cluster).</summary>
    public ClusterServeOptions Cluster { get; set; } = new();
    /// <summary>Kestrel's limits on slow and idle clients (section ActorQuery:Http).</summary>
    public HttpServeOptions Http { get; set; } = new();

    /// <summary>Plain API keys (command line, configuration, environment); the server keeps only their SHA-256.</summary>
    public List<string> ApiKeys { get; set; } = [];
    /// <summary>A file of SHA-256 hex hashes of API keys, one a line; empty: none.</summary>
    public string ApiKeyFile { get; set; } = "";
    public List<string> AdminKeys { get; set; } = [];
    public string AdminKeyFile { get; set; } = "";
    /// <summary>Serve without API keys on addresses beyond loopback (otherwise refused at start).</summary>
    public bool AllowUnauthenticated { get; set; }
    public bool MetricsAuth { get; set; }
    public int KeyRequestsPerMinute { get; set; }
    public int KeyTokensPerMinute { get; set; }
    public int KeyConcurrentRequests { get; set; }
    public int MaxStopStrings { get; set; } = Api.MaxStopStrings;
    public int MaxMessages { get; set; } = Api.MaxMessages;
    public int MaxPromptChars { get; set; } = Api.MaxPromptChars;

    public static readonly string[] LogLevels = ["Verbose", "Debug", "Information", "Warning", "Error", "Fatal"];

    /// <summary>Null: work it out from the machine.</summary>
    public long? MemoryLimitBytes => MemoryLimit.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null : ByteSize.Parse(MemoryLimit);
    public long CacheMaxBytesValue => ByteSize.Parse(CacheMaxBytes);
    public long MaxBodyBytesValue => ByteSize.Parse(MaxBodyBytes);
    /// <summary>Null: auto.</summary>
    public long? KvCacheBytes => KvCacheSize.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null : ByteSize.Parse(KvCacheSize);
    public TimeSpan DrainTimeout => TimeSpan.FromSeconds(DrainTimeoutSeconds);
    public TimeSpan DefaultDeadline => TimeSpan.FromSeconds(DefaultDeadlineSeconds);

    /// <summary>Validates every setting through <see cref="ServeSettings"/>, then binds; throws <see cref="OptionsException"/> naming the option at fault.</summary>
    public static ServeOptions From(IConfiguration configuration)
    {
        ServeSettings.Validate(configuration);
        var options = new ServeOptions();
        try { configuration.GetSection(Section).Bind(options); }
        catch (InvalidOperationException e)
        {
            // The binder's message names the key ("Failed to convert configuration value at 'ActorQuery:MaxQueue'...").
            throw new OptionsException(e.Message);
        }
        options.RefuseOpenExposure();
        if (options.Quantize.Equals("int8", StringComparison.OrdinalIgnoreCase))
        {
            if (options.Dtype is not ("auto" or "int8"))
                throw new OptionsException($"{Section}:Quantize int8 and {Section}:Dtype {options.Dtype} ask for different weights: give one of them");
            options.Dtype = "int8";
        }
        return options;
    }

    public bool HasApiKeys => ApiKeys.Count > 0 || ApiKeyFile.Length > 0;

    /// <summary>
    /// Without API keys anyone who reaches the port can use the model, so the server then listens on loopback only:
    /// an address beyond it (0.0.0.0, a LAN address, a host name, * or +) is refused unless AllowUnauthenticated says
    /// that this is meant (a trusted network, or a proxy in front that authenticates).
    /// </summary>
    private void RefuseOpenExposure()
    {
        if (HasApiKeys || AllowUnauthenticated) return;
        foreach (var url in Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string host = Microsoft.AspNetCore.Http.BindingAddress.Parse(url).Host;
            bool loopback = host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
                            || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip));
            if (!loopback)
                throw new OptionsException($"{Section}:Urls '{url}' listens beyond loopback and no API key is set: give --api-key or " +
                                           "--api-key-file, or --allow-unauthenticated to serve it open");
        }
    }
}

/// <summary>Kestrel's limits on slow and idle clients; the defaults hold a slowloris back without hurting real clients.</summary>
public sealed record HttpServeOptions
{
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(15);
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>Bytes per second; 0: no minimum. Kestrel's own default.</summary>
    public int MinRequestBodyDataRate { get; set; } = 240;
    /// <summary>Bytes per second; 0: no minimum. Server-sent event streams opt out (they are as slow as the model).</summary>
    public int MinResponseDataRate { get; set; } = 240;
    public TimeSpan MinDataRateGracePeriod { get; set; } = TimeSpan.FromSeconds(5);
    /// <summary>0: unlimited.</summary>
    public int MaxConcurrentConnections { get; set; } = 1024;
}

/// <summary>
/// How this node joins the cluster. The defaults make a single node that is gateway and worker and joins itself,
/// with remoting on 127.0.0.1 and a free port (so that several servers on one machine never collide).
/// A record so that two option sets compare by value.
/// </summary>
public sealed record ClusterServeOptions
{
    public const string Section = "Cluster";

    /// <summary>Comma-separated: gateway (HTTP + QueryRouter over every worker in the cluster), worker (model workers), or both.</summary>
    public string Roles { get; set; } = "gateway,worker";
    /// <summary>Address Akka.Remote binds to (0.0.0.0 to listen everywhere; then set PublicHostname).</summary>
    public string Hostname { get; set; } = "127.0.0.1";
    /// <summary>Akka.Remote port; 0: a free port. Seed nodes need a fixed one.</summary>
    public int Port { get; set; }
    /// <summary>Address the other nodes use for this one, when it differs from Hostname (containers, 0.0.0.0).</summary>
    public string PublicHostname { get; set; } = "";
    /// <summary>Comma-separated seed node addresses (akka.tcp://actorquery@10.0.0.1:4053). Empty, and no bootstrap: the node joins itself.</summary>
    public string SeedNodes { get; set; } = "";
    /// <summary>Actor system name; every node of one cluster must use the same.</summary>
    public string SystemName { get; set; } = "actorquery";
    /// <summary>This node's certificate with its key (PKCS#12); empty: the remoting is plain TCP.</summary>
    public string TlsCertificate { get; set; } = "";
    /// <summary>Password of <see cref="TlsCertificate"/>; from the environment (ACTORQUERY__CLUSTER__TLSPASSWORD) rather than the command line.</summary>
    public string TlsPassword { get; set; } = "";
    /// <summary>The cluster CA's certificate: peers must present one it issued. Empty: the machine's trust store decides.</summary>
    public string TlsCa { get; set; } = "";
    /// <summary>Coalescing window of load-only worker reports on the pub/sub topic.</summary>
    public TimeSpan LoadPublishInterval { get; set; } = new ClusterNodeOptions().LoadPublishInterval;
    /// <summary>Every worker's status is re-published this often, so that late-joining gateways learn about it.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = new ClusterNodeOptions().HeartbeatInterval;

    public IReadOnlyList<string> RoleList => Split(Roles).Select(r => r.ToLowerInvariant()).Distinct().ToList();
    public IReadOnlyList<string> SeedNodeList => Split(SeedNodes);

    private static List<string> Split(string s) => s.Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
}

public sealed class OptionsException(string message) : Exception(message);

