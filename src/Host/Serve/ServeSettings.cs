using System.Globalization;
using ActorQuery.Actors;
using ActorQuery.Actors.Cluster;
using ActorQuery.Contracts;
using Microsoft.Extensions.Configuration;

namespace ActorQuery.Host.Serve;

/// <summary>What a setting's value is: how it is read from the configuration and from the command line.</summary>
public enum SettingKind
{
    Text,
    Int,
    Number,
    /// <summary>Bytes, or a number with KiB, MiB, GiB, KB, MB, GB (<see cref="ByteSize"/>).</summary>
    Size,
    /// <summary>A size or <c>auto</c>.</summary>
    SizeOrAuto,
    /// <summary>true / false; on the command line, the flag present (true) or absent.</summary>
    Flag,
    /// <summary>true / false, on the command line too (<c>--prefix-caching false</c>): a setting that is on by default,
    /// which a flag's presence could not turn off.</summary>
    Switch,
    /// <summary>A time span as .NET reads it: <c>hh:mm:ss</c> with optional fractions (<c>00:00:00.5</c>).</summary>
    Duration,
    /// <summary>A list of integers: <c>KEY:0</c>, <c>KEY:1</c>, ... (<c>ACTORQUERY__FAULTS__OOMATSTEPS__0=5</c>).</summary>
    IntList,
    /// <summary>A list of texts: <c>KEY:0</c>, <c>KEY:1</c>, ...; on the command line, the flag given once per item.</summary>
    TextList,
}

/// <summary>
/// One setting of <c>serve</c>: its configuration key under "ActorQuery", the environment variable and the command-line
/// flag (or none) that set it, its default, its kind and its limits. <see cref="Check"/> gets the value already read
/// as its kind (int, double, long, bool, TimeSpan, int list, or the text) and returns why it is wrong, or null.
/// </summary>
public sealed record ServeSetting(string Key, string? Flag, SettingKind Kind, string Default, string Limits, string Help,
    Func<object, Func<string, string>, string?>? Check = null)
{
    public string ConfigKey => $"{ServeOptions.Section}:{Key}";
    public string EnvVar => "ACTORQUERY__" + Key.Replace(":", "__", StringComparison.Ordinal).ToUpperInvariant();
}

/// <summary>
/// The one table of serve's settings. It drives the command line (<see cref="ServeCli"/>), the defaults and the
/// validation of every configuration layer (appsettings.json, ACTORQUERY__* environment variables, command line),
/// <c>actorquery help</c>, and the README's configuration tables (a test keeps them equal to <see cref="Markdown"/>).
/// Every value is checked once, here, at start; the actors receive typed options and do not check them again.
/// Defaults are read from the typed options (<see cref="ServeOptions"/>, the Actors records), which hold each value once.
/// </summary>
public static class ServeSettings
{
    private static readonly ServeOptions S = new();
    private static readonly ActorQueryNodeOptions N = new();
    private static readonly ClusterNodeOptions C = new();
    private static readonly FaultOptions F = new();
    private static readonly HttpServeOptions H = new();

    public static readonly IReadOnlyList<ServeSetting> All =
    [
        new("ModelFolder", "model", SettingKind.Text, S.ModelFolder, "not empty; NAME=DIR, repeatable: a model pool",
            "Hugging Face model folder (config.json, tokenizer.json, *.safetensors); `--model NAME=DIR` given once or more serves a model pool (see *Model pool*)",
            (v, _) => NotEmpty(v)),
        new("ServedModelName", "served-model-name", SettingKind.Text, S.ServedModelName, "empty: the folder's name", "the name clients send as model"),
        new("Models", null, SettingKind.TextList, "none", "NAME=DIR or DIR, one key each (`__0`, `__1`, ...)",
            "the model pool's models (on the command line `--model NAME=DIR`, repeatable)", (v, _) => ((IReadOnlyList<string>)v).Any(string.IsNullOrWhiteSpace) ? "has an empty entry" : null),
        new("ModelsDir", "models-dir", SettingKind.Text, S.ModelsDir, "a folder; empty: none", "folder whose subfolders are models of the pool, each named by its folder",
            (v, _) => ((string)v).Length == 0 || Directory.Exists((string)v) ? null : $"'{v}' is not a folder"),
        new("DefaultModel", "default-model", SettingKind.Text, S.DefaultModel, "a pooled model's name; empty: the first", "the pool's model for requests that name none"),
        new("KeepAlive", "keep-alive", SettingKind.TextList, "5m", "DURATION (5m, 30s, 1h; -1 never, 0 at once) or NAME=DURATION; repeatable",
            "idle time after which a pooled model is unloaded (a request's keep_alive overrides it)", KeepAlives),
        new("Pin", "pin", SettingKind.TextList, "none", "a pooled model's name; repeatable", "pooled models loaded at start and never unloaded by keep-alive or eviction"),
        new("ModelOptions", null, SettingKind.TextList, "none", "NAME:KEY=VALUE, KEY one of dtype, workers, kv-cache-size; one key each (`__0`, ...)",
            "a pooled model's own dtype, workers (0: this node does not load it) or KV pool; on the command line `--dtype NAME=VALUE`, `--workers NAME=N`, `--kv-cache-size NAME=SIZE`",
            ModelOptionEntries),
        new("Serves", "serves", SettingKind.TextList, "all", "a pooled model's name; repeatable",
            "pooled models this node loads; it sends queries for the others to the cluster's nodes that load them"),
        new("Dtype", "dtype", SettingKind.Text, S.Dtype, "auto, float32, bfloat16, int8", "weight and compute dtype (auto: see *Models*; int8: weights quantized at load, CPU only)",
            OneOf("auto", "float32", "bfloat16", "int8")),
        new("Quantize", "quantize", SettingKind.Text, S.Quantize, "none, int8", "quantize the weights at load (int8: symmetric, groups of 32, float32 arithmetic, CPU only; the same as --dtype int8)",
            OneOf("none", "int8")),
        new("Device", "device", SettingKind.Text, S.Device, "auto, cpu, cuda, cuda:N, mps", "device the model runs on",
            (v, _) => (string)v is "auto" or "cpu" or "cuda" or "mps" || ((string)v).StartsWith("cuda:", StringComparison.Ordinal)
                ? null : $"'{v}' is not one of auto, cpu, cuda, cuda:N, mps"),
        new("DummyWeights", "dummy-weights", SettingKind.Flag, Flag(S.DummyWeights), "true, false", "random weights of the model folder's config (benchmarks without a download)"),
        new("WorkersPerNode", "workers", SettingKind.Int, Int(S.WorkersPerNode), $"[0, {ServeOptions.MaxWorkersPerNode}]; 0: a gateway-only node", "model workers on this node",
            IntIn(0, ServeOptions.MaxWorkersPerNode, " (0: a gateway-only node)")),
        new("WorkerProcesses", "worker-processes", SettingKind.Int, Int(S.WorkerProcesses), "[0, 16]; 0: workers in the server process",
            "child processes running the node's workers (each --workers of them); a process that dies is restarted and its queries resume",
            IntIn(0, 16, " (0: workers in the server process)")),
        new("WorkerRecycleAfterSeconds", "worker-recycle-after", SettingKind.Number, Num(S.WorkerRecycleAfterSeconds), "[0, 3600]; 0: never",
            "seconds a worker process may stay past its memory plan (its watchdog paused) before it is restarted, its queries resumed",
            (v, _) => (double)v is >= 0 and <= 3600 ? null : "must be in [0, 3600]"),
        new("StepTimeoutSeconds", "step-timeout", SettingKind.Number, Num(S.StepTimeoutSeconds), "[0, 86400]; 0: never",
            "seconds an engine step may run while work is pending before its worker counts as hung (a worker process ends and is restarted, its queries resumed)",
            (v, _) => (double)v is >= 0 and <= 86400 ? null : "must be in [0, 86400]"),
        new("KvCacheSize", "kv-cache-size", SettingKind.SizeOrAuto, S.KvCacheSize, "auto, or [1MiB, unlimited]",
            "KV-cache pool of each worker, committed at load; auto: all that the memory plan leaves (see *Memory*)", SizeIn(1 << 20)),
        new("MaxBatch", "max-batch", SettingKind.Int, Int(S.MaxBatch), "[1, 1024]", "sequences per forward pass per worker",
            IntIn(1, 1024)),
        new("PrefixCaching", "prefix-caching", SettingKind.Switch, Flag(S.PrefixCaching), "true, false",
            "automatic prefix caching: a request reuses the KV blocks of the longest prompt prefix already computed (see *Prefix caching*)"),
        new("MemoryLimit", "memory-limit", SettingKind.SizeOrAuto, S.MemoryLimit, "auto, or [1MiB, the cgroup's limit]",
            "the real memory limit; auto: the smaller of physical memory and the memory cgroup's limit (a size above the cgroup's is refused)", SizeIn(1 << 20)),
        new("MemoryUtilization", "memory-utilization", SettingKind.Number, Num(S.MemoryUtilization), "(0, 1]",
            "share of the memory limit the plan (weights, activations, KV pool) may use", (v, _) => (double)v is > 0 and <= 1 ? null : "must be in (0, 1]"),
        new("CleanupMark", "cleanup-mark", SettingKind.Number, Num(S.CleanupMark), "(0, 1), below PauseMark",
            "fraction of the headroom the plan leaves where workers and the answer cache free memory",
            (v, read) => (double)v is > 0 and < 1 ? (double)v < ReadDouble(read("PauseMark")) ? null : $"({Num((double)v)}) must be below PauseMark ({read("PauseMark")})"
                : "must be in (0, 1)"),
        new("PauseMark", "pause-mark", SettingKind.Number, Num(S.PauseMark), "(0, 1], below Watchdog:ShedMark", "fraction of the headroom the plan leaves where admission pauses",
            (v, read) => (double)v is > 0 and <= 1 ? (double)v < ReadDouble(read("Watchdog:ShedMark")) ? null : $"({Num((double)v)}) must be below Watchdog:ShedMark ({read("Watchdog:ShedMark")})"
                : "must be in (0, 1]"),
        new("MaxInFlight", "max-in-flight", SettingKind.Int, Int(S.MaxInFlight), ">= 0; 0: auto",
            "queries running at once per node; auto: the node's batch capacity (worker processes x workers x max batch, at least 8)", IntIn(0)),
        new("MaxQueue", "max-queue", SettingKind.Int, Int(S.MaxQueue), ">= 0", "queries waiting per node before 429", IntIn(0)),
        new("MaxResumes", "max-resumes", SettingKind.Int, Int(S.MaxResumes), ">= 0; 0: fail instead",
            "times a query whose worker is lost after it generated tokens continues from them on another worker", IntIn(0)),
        new("DefaultDeadlineSeconds", "deadline", SettingKind.Number, Num(S.DefaultDeadlineSeconds), "> 0", "deadline in seconds of a query that names none",
            (v, _) => (double)v > 0 && double.IsFinite((double)v) ? null : "must be > 0"),
        new("CacheEntries", "cache-entries", SettingKind.Int, Int(S.CacheEntries), ">= 0; 0: no cache", "answer cache entries", IntIn(0, int.MaxValue, " (0 turns the cache off)")),
        new("CacheMaxBytes", "cache-size", SettingKind.Size, S.CacheMaxBytes, "[0B, unlimited]", "answer cache size", SizeIn(0)),
        new("Urls", "urls", SettingKind.Text, S.Urls, "http(s) URLs, ';'-separated", "where HTTP listens",
            (v, _) => ((string)v).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).All(IsBindingUrl)
                ? null : $"'{v}' is not a ';'-separated list of http(s) URLs"),
        new("LogFolder", "log-folder", SettingKind.Text, S.LogFolder, "not empty", "folder of the app- and error- log files", (v, _) => NotEmpty(v)),
        new("LogLevel", "log-level", SettingKind.Text, S.LogLevel, string.Join(", ", ServeOptions.LogLevels), "least level logged",
            (v, _) => ServeOptions.LogLevels.Contains((string)v, StringComparer.OrdinalIgnoreCase) ? null
                : $"'{v}' is not one of {string.Join(", ", ServeOptions.LogLevels)}"),
        new("AlertWebhook", "alert-webhook", SettingKind.Text, S.AlertWebhook, "an http(s) URL; empty: off",
            "where alerts are POSTed as JSON, once when one fires and once when it resolves (see *Dashboard and alerts*)",
            (v, _) => ((string)v).Length == 0 || (Uri.TryCreate((string)v, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
                ? null : $"'{v}' is not an http(s) URL"),
        new("DrainTimeoutSeconds", "drain-timeout", SettingKind.Number, Num(S.DrainTimeoutSeconds), "[0, 3600]", "seconds running requests get on shutdown",
            (v, _) => (double)v is >= 0 and <= 3600 ? null : "must be in [0, 3600]"),
        new("MaxBodyBytes", "max-body", SettingKind.Size, S.MaxBodyBytes, "[1KiB, 64MiB]", "largest request body", SizeIn(1024, 64L << 20)),
        new("DefaultMaxTokens", "default-max-tokens", SettingKind.Int, Int(S.DefaultMaxTokens), ">= 1", "new tokens when a request names none", IntIn(1)),
        new("SettingsFile", "settings", SettingKind.Text, S.SettingsFile, "a JSON file; empty: none",
            "settings file layered over the environment, re-read when it changes (Faults:LeakBytesPerStep applies live)",
            (v, _) => ((string)v).Length == 0 || File.Exists((string)v) ? null : $"'{v}' does not exist"),
        new("ApiKeys", "api-key", SettingKind.TextList, "none", "repeatable; each at least 16 characters",
            "an API key that clients send as 'Authorization: Bearer KEY' (see *Security*); with none, only loopback --urls",
            StrongKeys),
        new("ApiKeyFile", "api-key-file", SettingKind.Text, S.ApiKeyFile, "a file; empty: none",
            "API keys as SHA-256 hex hashes, one a line ('printf %s KEY | sha256sum'), each optionally followed by a label and its own limits (see *Security*)", HashFile),
        new("AdminKeys", "admin-key", SettingKind.TextList, "none", "repeatable; each at least 16 characters",
            "a key for /admin/* (drain, recycle, cleanup, faults); with none, /admin/* is closed",
            StrongKeys),
        new("AdminKeyFile", "admin-key-file", SettingKind.Text, S.AdminKeyFile, "a file; empty: none", "admin keys as SHA-256 hex hashes, as --api-key-file", HashFile),
        new("AllowUnauthenticated", "allow-unauthenticated", SettingKind.Flag, Flag(S.AllowUnauthenticated), "true, false",
            "serve without API keys on addresses beyond loopback"),
        new("MetricsAuth", "metrics-auth", SettingKind.Flag, Flag(S.MetricsAuth), "true, false", "/metrics needs an API key too (when keys are on)"),
        new("KeyRequestsPerMinute", "key-requests-per-minute", SettingKind.Int, Int(S.KeyRequestsPerMinute), ">= 0; 0: unlimited",
            "generation requests one key may start per minute", IntIn(0)),
        new("KeyTokensPerMinute", "key-tokens-per-minute", SettingKind.Int, Int(S.KeyTokensPerMinute), ">= 0; 0: unlimited",
            "completion tokens one key may ask for per minute (each request's max tokens, taken when it is admitted)", IntIn(0)),
        new("KeyConcurrentRequests", "key-concurrent-requests", SettingKind.Int, Int(S.KeyConcurrentRequests), ">= 0; 0: unlimited",
            "generation requests of one key running at once", IntIn(0)),
        new("MaxStopStrings", "max-stop-strings", SettingKind.Int, Int(S.MaxStopStrings), "[1, 1024]", "stop strings one request may carry", IntIn(1, 1024)),
        new("MaxMessages", "max-messages", SettingKind.Int, Int(S.MaxMessages), ">= 1", "chat messages one request may carry", IntIn(1)),
        new("MaxPromptChars", "max-prompt-chars", SettingKind.Int, Int(S.MaxPromptChars), ">= 1",
            "characters of a prompt (or of all messages' content), checked before tokenization", IntIn(1)),
        new("Node", "node-name", SettingKind.Text, "the machine name", "any text", "this node's name in statuses"),
        new("Cluster:Roles", "roles", SettingKind.Text, S.Cluster.Roles, "gateway, worker or both, ','-separated", "what this node does (see docs/operations.md)",
            (v, _) => RoleList((string)v) is { Count: > 0 } roles && roles.All(r => r is "gateway" or "worker") ? null
                : $"'{v}' is not a comma-separated list of gateway, worker"),
        new("Cluster:Hostname", "cluster-host", SettingKind.Text, S.Cluster.Hostname, "not empty", "address Akka.Remote binds to", (v, _) => NotEmpty(v)),
        new("Cluster:Port", "cluster-port", SettingKind.Int, Int(S.Cluster.Port), "[0, 65535]; 0: a free port", "Akka.Remote port (seed nodes need a fixed one)",
            IntIn(0, 65535, " (0: a free port)")),
        new("Cluster:PublicHostname", "cluster-public-host", SettingKind.Text, S.Cluster.PublicHostname, "empty: the bind address", "address the other nodes use for this one"),
        new("Cluster:SeedNodes", "seed-nodes", SettingKind.Text, S.Cluster.SeedNodes, "','-separated akka.tcp://SYSTEM@HOST:PORT; empty: join itself",
            "seed node addresses", SeedNodes),
        new("Cluster:SystemName", "cluster-name", SettingKind.Text, S.Cluster.SystemName, "ASCII letters, digits, '-', '_'", "actor system name, the same on every node",
            (v, _) => !string.IsNullOrWhiteSpace((string)v) && ((string)v).All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_') ? null
                : $"'{v}' must be ASCII letters, digits, '-' or '_'"),
        new("Cluster:TlsCertificate", "cluster-tls-certificate", SettingKind.Text, S.Cluster.TlsCertificate, "a PKCS#12 (.pfx) file with its key; empty: plain TCP",
            "this node's certificate: remoting over TLS with mutual authentication, seed addresses akka.ssl.tcp://",
            (v, read) => ClusterTlsFiles.Why((string)v, read("Cluster:TlsPassword"), read("Cluster:TlsCa"))),
        new("Cluster:TlsPassword", "cluster-tls-password", SettingKind.Text, S.Cluster.TlsPassword, "any text; better the environment than the command line",
            "password of the certificate file"),
        new("Cluster:TlsCa", "cluster-tls-ca", SettingKind.Text, S.Cluster.TlsCa, "a PEM or DER certificate file; empty: the machine's trust store",
            "the cluster CA: a peer must present a certificate it issued, or the handshake fails"),

        // The finer settings: no command-line flag; they bind onto the Actors' typed records.
        new("Router:QueueFullRetryAfter", null, SettingKind.Duration, Span(N.Router.QueueFullRetryAfter), ">= 0", "Retry-After of a queue-full refusal", SpanAtLeastZero),
        new("Router:MemoryPressureRetryAfter", null, SettingKind.Duration, Span(N.Router.MemoryPressureRetryAfter), ">= 0", "Retry-After of a memory-pressure refusal", SpanAtLeastZero),
        new("Router:NoModelRetryAfter", null, SettingKind.Duration, Span(N.Router.NoModelRetryAfter), ">= 0", "Retry-After of a no-model-ready refusal", SpanAtLeastZero),
        new("Router:MaxAttempts", null, SettingKind.Int, Int(N.Router.MaxAttempts), ">= 1", "dispatches of one query in all (1 + retries before its first token)", IntIn(1)),
        new("Workers:Dispatcher", null, SettingKind.Text, N.Workers.Dispatcher, "a dispatcher of hocon/", "dispatcher of the ModelActors", (v, _) => NotEmpty(v)),
        new("Workers:BackoffMin", null, SettingKind.Duration, Span(N.Workers.BackoffMin), ">= 0", "first restart delay after a failure", SpanAtLeastZero),
        new("Workers:BackoffMax", null, SettingKind.Duration, Span(N.Workers.BackoffMax), ">= Workers:BackoffMin", "longest restart delay",
            (v, read) => (TimeSpan)v >= ReadSpan(read("Workers:BackoffMin")) ? null : $"must be >= Workers:BackoffMin ({read("Workers:BackoffMin")})"),
        new("Workers:BackoffJitter", null, SettingKind.Number, Num(N.Workers.BackoffJitter), "[0, 1]", "random extra restart delay, a fraction of the delay",
            (v, _) => (double)v is >= 0 and <= 1 ? null : "must be in [0, 1]"),
        new("Workers:BackoffResetAfter", null, SettingKind.Duration, Span(N.Workers.BackoffResetAfter), ">= 0", "uptime after which the backoff starts over", SpanAtLeastZero),
        new("Workers:DegradeAfterOoms", null, SettingKind.Int, Int(N.Workers.DegradeAfterOoms), ">= 1", "out-of-memory failures within Workers:OomWindow that degrade a worker", IntIn(1)),
        new("Workers:OomWindow", null, SettingKind.Duration, Span(N.Workers.OomWindow), "> 0", "window of Workers:DegradeAfterOoms", SpanAboveZero),
        new("Workers:MaxDegradeLevels", null, SettingKind.Int, Int(N.Workers.MaxDegradeLevels), ">= 0", "levels of half the KV budget and batch", IntIn(0)),
        new("Workers:CpuFallback", null, SettingKind.Flag, Flag(N.Workers.CpuFallback), "true, false", "after the last level, load a GPU model on the CPU"),
        new("Workers:MaxLoadAttempts", null, SettingKind.Int, Int(N.Workers.MaxLoadAttempts), ">= 1", "out-of-memory loads before a worker is Failed", IntIn(1)),
        new("Watchdog:Enabled", null, SettingKind.Flag, Flag(N.Watchdog.Enabled), "true, false", "the memory watchdog"),
        new("Watchdog:Interval", null, SettingKind.Duration, Span(N.Watchdog.Interval), "> 0", "longest wait between readings below the cleanup mark (sooner while memory grows toward it)", SpanAboveZero),
        new("Watchdog:FastInterval", null, SettingKind.Duration, Span(N.Watchdog.FastInterval), "> 0", "how often it reads above the cleanup mark", SpanAboveZero),
        new("Watchdog:ShedMark", null, SettingKind.Number, Num(N.Watchdog.ShedMark), "(0, 1]", "fraction of the headroom where workers preempt their newest sequences and hold their steps",
            (v, _) => (double)v is > 0 and <= 1 ? null : "must be in (0, 1]"),
        new("Watchdog:ShedHold", null, SettingKind.Duration, Span(N.Watchdog.ShedHold), ">= 0", "longest the workers hold their steps above the shed mark", SpanAtLeastZero),
        new("Watchdog:CleanupBackoff", null, SettingKind.Duration, Span(N.Watchdog.CleanupBackoff), ">= 0", "wait before repeating a cleanup that freed little", SpanAtLeastZero),
        new("Faults:OomEveryNthStep", null, SettingKind.Int, Int(F.OomEveryNthStep), ">= 0; 0: never", "every Nth engine step raises an out-of-memory", IntIn(0)),
        new("Faults:OomOnLoadAttempts", null, SettingKind.Int, Int(F.OomOnLoadAttempts), ">= 0; 0: never", "the first N loads of each worker fail with an out-of-memory", IntIn(0)),
        new("Faults:CrashEveryNthStep", null, SettingKind.Int, Int(F.CrashEveryNthStep), ">= 0; 0: never", "every Nth engine step raises a crash", IntIn(0)),
        new("Faults:StepDelayMs", null, SettingKind.Int, Int(F.StepDelayMs), ">= 0", "milliseconds each engine step sleeps first", IntIn(0)),
        new("Faults:LeakBytesPerStep", null, SettingKind.Size, ByteSize.Format(F.LeakBytesPerStep), "[0B, 1GiB]; 0: off", "native memory each engine step leaks (live from the settings file or POST /admin/faults; 0 frees it)",
            SizeIn(0, FaultOptions.MaxLeakBytesPerStep)),
        new("Faults:HangAtStep", null, SettingKind.Int, Int(F.HangAtStep), ">= 0; 0: never", "the engine step with this number (counted from 1 in each process) never returns (a hung driver call)", IntIn(0)),
        new("Faults:OomAtSteps", null, SettingKind.IntList, "none", "step numbers >= 1, one key each (`__0`, `__1`, ...)", "engine steps that raise an out-of-memory",
            (v, _) => ((IReadOnlyList<int>)v).All(s => s >= 1) ? null : "step numbers start at 1"),
        new("Http:RequestHeadersTimeout", null, SettingKind.Duration, Span(H.RequestHeadersTimeout), "> 0", "time a client has to send a request's headers", SpanAboveZero),
        new("Http:KeepAliveTimeout", null, SettingKind.Duration, Span(H.KeepAliveTimeout), "> 0", "time an idle connection stays open", SpanAboveZero),
        new("Http:MinRequestBodyDataRate", null, SettingKind.Int, Int(H.MinRequestBodyDataRate), ">= 0; 0: off",
            "bytes per second a client must send a request body at, after Http:MinDataRateGracePeriod", IntIn(0)),
        new("Http:MinResponseDataRate", null, SettingKind.Int, Int(H.MinResponseDataRate), ">= 0; 0: off",
            "bytes per second a client must read a response at, after Http:MinDataRateGracePeriod (streams are exempt)", IntIn(0)),
        new("Http:MinDataRateGracePeriod", null, SettingKind.Duration, Span(H.MinDataRateGracePeriod), ">= 00:00:01", "time before the data rates apply",
            (v, _) => (TimeSpan)v >= TimeSpan.FromSeconds(1) ? null : "must be >= 00:00:01"),
        new("Http:MaxConcurrentConnections", null, SettingKind.Int, Int(H.MaxConcurrentConnections), ">= 0; 0: unlimited", "open HTTP connections", IntIn(0)),
        new("Cluster:LoadPublishInterval", null, SettingKind.Duration, Span(C.LoadPublishInterval), "> 0", "coalescing window of workers' load reports", SpanAboveZero),
        new("Cluster:HeartbeatInterval", null, SettingKind.Duration, Span(C.HeartbeatInterval), "> 0", "how often every worker's status is re-published", SpanAboveZero),
    ];

    public static ServeSetting Get(string key) => All.Single(s => s.Key == key);

    /// <summary>
    /// Checks every setting of the "ActorQuery" section (missing ones take their defaults); throws
    /// <see cref="OptionsException"/> naming the first setting at fault, in one line.
    /// </summary>
    public static void Validate(IConfiguration configuration)
    {
        var section = configuration.GetSection(ServeOptions.Section);
        RefuseUnknownKeys(section);
        string Read(string key)
        {
            var setting = Get(key);
            return section[key] ?? setting.Default;
        }
        foreach (var s in All)
        {
            object? value = Parse(s, section);
            if (value is null || s.Check is null) continue;
            var error = s.Check(value, Read);
            if (error is not null) throw new OptionsException($"{s.ConfigKey} {error}");
        }
    }

    /// <summary>Fields of the actors' option records that a main setting sets: binding them too would be overridden.</summary>
    private static readonly Dictionary<string, string> SetByMainSetting = new(StringComparer.OrdinalIgnoreCase)
    {
        ["Router:MaxInFlight"] = "MaxInFlight", ["Router:MaxQueue"] = "MaxQueue", ["Router:MaxResumes"] = "MaxResumes", ["Router:DefaultTimeout"] = "DefaultDeadlineSeconds",
        ["Workers:Count"] = "WorkersPerNode", ["Workers:MaxBatch"] = "MaxBatch",
        ["Watchdog:CleanupMark"] = "CleanupMark", ["Watchdog:PauseMark"] = "PauseMark",
        ["Cache:Enabled"] = "CacheEntries", ["Cache:MaxEntries"] = "CacheEntries", ["Cache:MaxBytes"] = "CacheMaxBytes",
    };

    /// <summary>
    /// A key under "ActorQuery" that is no setting would be ignored without a word (a typo such as
    /// <c>ACTORQUERY__MAXQEUE</c>, or a record field that a main setting overrides): refuse it, naming what to use.
    /// </summary>
    private static void RefuseUnknownKeys(IConfigurationSection section)
    {
        foreach (var (key, value) in section.AsEnumerable(makePathsRelative: true))
        {
            if (value is null) continue; // a section, not a value
            bool known = All.Any(s => s.Key.Equals(key, StringComparison.OrdinalIgnoreCase)
                                      || (s.Kind is SettingKind.IntList or SettingKind.TextList && key.StartsWith(s.Key + ":", StringComparison.OrdinalIgnoreCase)));
            if (known) continue;
            var full = $"{ServeOptions.Section}:{key}";
            if (SetByMainSetting.TryGetValue(key, out var main))
            {
                var setting = Get(main);
                full = $"{ServeOptions.Section}:{SetByMainSetting.Keys.First(k => k.Equals(key, StringComparison.OrdinalIgnoreCase))}";
                throw new OptionsException($"{full} is set by {setting.ConfigKey}{(setting.Flag is null ? "" : $" (--{setting.Flag})")}; use that instead");
            }
            throw new OptionsException($"{full} is not a setting (actorquery help lists them)");
        }
    }

    /// <summary>The value as its kind; null where it takes no check (unset node name, auto memory limit).</summary>
    private static object? Parse(ServeSetting s, IConfigurationSection section)
    {
        if (s.Kind == SettingKind.IntList)
        {
            var list = new List<int>();
            foreach (var child in section.GetSection(s.Key).GetChildren())
            {
                if (!int.TryParse(child.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i))
                    throw new OptionsException($"{s.ConfigKey} '{child.Value}' is not an integer");
                list.Add(i);
            }
            return list;
        }
        if (s.Kind == SettingKind.TextList)
            return section.GetSection(s.Key).GetChildren().Select(c => c.Value ?? "").ToList();
        string? text = section[s.Key];
        if (text is null && s.Key == "Node") return null;
        text ??= s.Default;
        switch (s.Kind)
        {
            case SettingKind.Int:
                return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) ? i
                    : throw new OptionsException($"{s.ConfigKey} '{text}' is not an integer");
            case SettingKind.Number:
                return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d
                    : throw new OptionsException($"{s.ConfigKey} '{text}' is not a number");
            case SettingKind.Flag or SettingKind.Switch:
                return bool.TryParse(text, out bool b) ? b : throw new OptionsException($"{s.ConfigKey} '{text}' is not true or false");
            case SettingKind.Duration:
                return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var t) ? t
                    : throw new OptionsException($"{s.ConfigKey} '{text}' is not a time span like 00:00:05 or 00:00:00.5");
            case SettingKind.SizeOrAuto when text.Equals("auto", StringComparison.OrdinalIgnoreCase):
                return null;
            case SettingKind.Size or SettingKind.SizeOrAuto:
                try { return ByteSize.Parse(text); }
                catch (FormatException e) { throw new OptionsException($"{s.ConfigKey} {e.Message}"); }
            default:
                return text;
        }
    }

    /// <summary><c>actorquery help</c>: the flags, then the finer settings by environment variable.</summary>
    public static string Help()
    {
        var lines = All.Where(s => s.Flag is not null)
            .Select(s => $"             --{s.Flag,-20} {s.Help} ({s.Limits}; default {s.Default})").ToList();
        lines.Add("             finer settings (no flag; appsettings.json or the environment):");
        lines.AddRange(All.Where(s => s.Flag is null)
            .Select(s => $"               {s.EnvVar,-40} {s.Help} ({s.Limits}; default {s.Default})"));
        return string.Join(Environment.NewLine, lines);
    }

    /// <summary>The README's configuration tables: the settings with a command-line flag, then the finer ones.</summary>
    public static string Markdown()
    {
        const string header = "| setting | env var | command line | default | limits |\n| --- | --- | --- | --- | --- |\n";
        string Rows(IEnumerable<ServeSetting> settings) => string.Concat(settings.Select(MarkdownRow).Select(r => r + "\n"));
        return header + Rows(All.Where(s => s.Flag is not null)) + "\n" + header + Rows(All.Where(s => s.Flag is null));
    }

    public static string MarkdownRow(ServeSetting s) =>
        $"| {s.Help} (`{s.Key}`) | `{s.EnvVar}` | {(s.Flag is null ? "none" : $"`--{s.Flag}`")} | {(s.Default.Length == 0 ? "empty" : s.Default == "the machine name" || s.Default == "none" ? s.Default : $"`{s.Default}`")} | {s.Limits} |";

    // ---- formatting of defaults and the rules ----

    private static string Int(int v) => v.ToString(CultureInfo.InvariantCulture);
    private static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    private static string Flag(bool v) => v ? "true" : "false";

    /// <summary>hh:mm:ss and the fraction without trailing zeros (00:00:00.5), which TimeSpan.Parse reads back.</summary>
    private static string Span(TimeSpan t) => t.ToString(t.Ticks % TimeSpan.TicksPerSecond == 0 ? @"hh\:mm\:ss" : @"hh\:mm\:ss\.FFFFFFF", CultureInfo.InvariantCulture);

    private static double ReadDouble(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : double.NaN;
    private static TimeSpan ReadSpan(string s) => TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out var t) ? t : TimeSpan.MaxValue;

    private static string? NotEmpty(object v) => string.IsNullOrWhiteSpace((string)v) ? "must not be empty" : null;

    private static Func<object, Func<string, string>, string?> OneOf(params string[] values) =>
        (v, _) => values.Contains((string)v) ? null : $"'{v}' is not one of {string.Join(", ", values)}";

    private static Func<object, Func<string, string>, string?> IntIn(int min, int max = int.MaxValue, string note = "") =>
        (v, _) => (int)v >= min && (int)v <= max ? null : (max == int.MaxValue ? $"must be >= {min}" : $"must be in [{min}, {max}]") + note;

    private static Func<object, Func<string, string>, string?> SizeIn(long min, long max = long.MaxValue) =>
        (v, _) => (long)v >= min && (long)v <= max ? null : $"must be in [{ByteSize.Format(min)}, {ByteSize.Format(max)}]";

    private static string? SpanAtLeastZero(object v, Func<string, string> _) => (TimeSpan)v >= TimeSpan.Zero ? null : "must be >= 0";
    private static string? SpanAboveZero(object v, Func<string, string> _) => (TimeSpan)v > TimeSpan.Zero ? null : "must be > 0";

    /// <summary>Keys short enough to guess are refused rather than served with.</summary>
    private static string? StrongKeys(object v, Func<string, string> _) =>
        ((IReadOnlyList<string>)v).FirstOrDefault(k => k.Trim().Length < 16) is { } weak ? $"has a key of {weak.Trim().Length} characters; at least 16" : null;

    /// <summary>A URL as Kestrel binds it (which, unlike <see cref="Uri"/>, reads the wildcard hosts * and +).</summary>
    private static bool IsBindingUrl(string url)
    {
        try { return Microsoft.AspNetCore.Http.BindingAddress.Parse(url) is { Scheme: "http" or "https" } a && a.Host.Length > 0; }
        catch (FormatException) { return false; }
    }

    /// <summary>Each entry is NAME:KEY=VALUE with a value the setting KEY names would take.</summary>
    private static string? ModelOptionEntries(object v, Func<string, string> read)
    {
        foreach (var item in (IReadOnlyList<string>)v)
        {
            int colon = item.IndexOf(':'), eq = colon < 0 ? -1 : item.IndexOf('=', colon);
            if (colon <= 0 || eq < 0) return $"'{item}' is not NAME:KEY=VALUE";
            string key = item[(colon + 1)..eq].Trim(), value = item[(eq + 1)..].Trim();
            if (!ServeOptions.PerModelKeys.TryGetValue(key, out var settingKey))
                return $"'{item}': {key} is not one of {string.Join(", ", ServeOptions.PerModelKeys.Keys)}";
            var setting = Get(settingKey);
            object typed;
            try
            {
                typed = setting.Kind switch
                {
                    SettingKind.Int => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) ? i : throw new FormatException($"'{value}' is not an integer"),
                    SettingKind.SizeOrAuto when value.Equals("auto", StringComparison.OrdinalIgnoreCase) => "auto",
                    SettingKind.SizeOrAuto => ByteSize.Parse(value),
                    _ => value,
                };
            }
            catch (FormatException e) { return $"'{item}': {e.Message}"; }
            if (typed is not "auto" && setting.Check?.Invoke(typed, read) is { } why) return $"'{item}': {why}";
        }
        return null;
    }

    private static string? KeepAlives(object v, Func<string, string> _)
    {
        foreach (var item in (IReadOnlyList<string>)v)
        {
            int eq = item.IndexOf('=');
            try { KeepAliveDuration.Parse(eq < 0 ? item : item[(eq + 1)..]); }
            catch (FormatException e) { return $"'{item}': {e.Message}"; }
        }
        return null;
    }

    private static string? HashFile(object v, Func<string, string> _)
    {
        string path = (string)v;
        if (path.Length == 0) return null;
        if (!File.Exists(path)) return $"'{path}' does not exist";
        try { ActorQuery.Api.Security.ApiKeySet.ReadHashFile(path); return null; }
        catch (FormatException e) { return e.Message; }
        catch (IOException e) { return $"'{path}' cannot be read: {e.Message}"; }
        catch (UnauthorizedAccessException e) { return $"'{path}' cannot be read: {e.Message}"; }
    }

    internal static List<string> RoleList(string s) =>
        s.Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(r => r.ToLowerInvariant()).Distinct().ToList();

    private static string? SeedNodes(object v, Func<string, string> read)
    {
        string system = read("Cluster:SystemName");
        bool tls = read("Cluster:TlsCertificate").Length > 0;
        string protocol = tls ? "akka.ssl.tcp" : "akka.tcp";
        foreach (var seed in ((string)v).Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Akka.Actor.Address.TryParse(seed, out var a) || a.Host is null || a.Port is not > 0)
                return $"'{seed}' is not an address like {protocol}://{system}@10.0.0.1:4053";
            // A TLS node's transport speaks akka.ssl.tcp only (and a plain one akka.tcp only): another scheme could never connect.
            if (a.Protocol != protocol)
                return $"'{seed}' is {a.Protocol}://, this node's remoting is {protocol}:// ({(tls ? "TLS on" : "TLS off")}: Cluster:TlsCertificate)";
            if (a.System != system) return $"'{seed}' names system '{a.System}', this node is '{system}'";
        }
        return null;
    }
}
