using System.Globalization;
using ActorQuery.Host.Cli;

namespace ActorQuery.Host.Serve;

/// <summary>
/// The command-line options of <c>serve</c>, each mapped onto a key of <see cref="ServeOptions"/> so that the
/// command line is simply the last configuration layer. Types are checked here so that a bad value is one line
/// and exit code 2; ranges are checked with every other layer by <see cref="ServeOptions.Validate"/>.
/// </summary>
public static class ServeCli
{
    private enum Kind { Text, Int, Number, Size, Flag }

    /// <summary>Option → (key, kind, help).</summary>
    public static readonly IReadOnlyList<(string Option, string Key, string Help)> Options =
    [
        ("model", "ModelFolder", "Hugging Face model folder (default models/default)"),
        ("dtype", "Dtype", "auto | float32 | bfloat16"),
        ("device", "Device", "auto | cpu | cuda | cuda:N | mps"),
        ("workers", "WorkersPerNode", "model workers on this node"),
        ("memory-limit", "MemoryLimit", "memory budget, e.g. 8GiB (default auto)"),
        ("cleanup-mark", "CleanupMark", "fraction of the limit where workers clean up (0.5)"),
        ("pause-mark", "PauseMark", "fraction of the limit where admission pauses (0.7)"),
        ("max-in-flight", "MaxInFlight", "queries running at once per node (8)"),
        ("max-queue", "MaxQueue", "queries waiting per node before 429 (64)"),
        ("deadline", "DefaultDeadlineSeconds", "default query deadline in seconds (120)"),
        ("cache-entries", "CacheEntries", "answer cache entries, 0 = off (1024)"),
        ("cache-size", "CacheMaxBytes", "answer cache size, e.g. 64MiB"),
        ("urls", "Urls", "listen URLs, ';'-separated (http://localhost:8000)"),
        ("log-folder", "LogFolder", "folder of app-/error- log files (logs)"),
        ("log-level", "LogLevel", "Verbose | Debug | Information | Warning | Error"),
        ("drain-timeout", "DrainTimeoutSeconds", "seconds running requests get on shutdown (30)"),
        ("max-body", "MaxBodyBytes", "largest request body (1MiB)"),
        ("default-max-tokens", "DefaultMaxTokens", "new tokens when a request names none (256)"),
        ("kv-cache-size", "KvCacheSize", "KV-cache budget of each worker, e.g. 2GiB (1GiB)"),
        ("max-batch", "MaxBatch", "sequences per forward pass per worker (16)"),
        ("dummy-weights", "DummyWeights", "random weights of the model's config (benchmarks)"),
        ("node-name", "Node", "this node's name in statuses (the machine name)"),
        ("roles", "Cluster:Roles", "gateway,worker (default) | gateway | worker"),
        ("cluster-host", "Cluster:Hostname", "address Akka.Remote binds to (127.0.0.1)"),
        ("cluster-port", "Cluster:Port", "Akka.Remote port, 0 = any free port (0)"),
        ("cluster-public-host", "Cluster:PublicHostname", "address other nodes use for this one"),
        ("seed-nodes", "Cluster:SeedNodes", "comma-separated akka.tcp://actorquery@HOST:PORT; none = join itself"),
        ("cluster-name", "Cluster:SystemName", "actor system name, the same on every node (actorquery)"),
    ];

    private static readonly Dictionary<string, Kind> Kinds = new()
    {
        ["WorkersPerNode"] = Kind.Int, ["MaxInFlight"] = Kind.Int, ["MaxQueue"] = Kind.Int, ["CacheEntries"] = Kind.Int,
        ["DefaultMaxTokens"] = Kind.Int, ["CleanupMark"] = Kind.Number, ["PauseMark"] = Kind.Number,
        ["DefaultDeadlineSeconds"] = Kind.Number, ["DrainTimeoutSeconds"] = Kind.Number, ["CacheMaxBytes"] = Kind.Size,
        ["MaxBodyBytes"] = Kind.Size, ["KvCacheSize"] = Kind.Size, ["MaxBatch"] = Kind.Int, ["DummyWeights"] = Kind.Flag,
        ["Cluster:Port"] = Kind.Int,
    };

    /// <summary>Command line → configuration keys ("ActorQuery:MaxQueue" = "128"). Throws <see cref="CliException"/>.</summary>
    public static Dictionary<string, string?> Parse(string[] args)
    {
        var cli = new CliArgs(args, new HashSet<string> { "dummy-weights" });
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (option, key, _) in Options)
        {
            string? value = Kinds.GetValueOrDefault(key, Kind.Text) switch
            {
                Kind.Int => cli.Int(option)?.ToString(CultureInfo.InvariantCulture),
                Kind.Number => cli.Float(option)?.ToString("R", CultureInfo.InvariantCulture),
                Kind.Size => SizeText(cli.String(option), option),
                Kind.Flag => cli.Flag(option) ? "true" : null,
                _ => cli.String(option),
            };
            if (value is not null) overrides[$"{ServeOptions.Section}:{key}"] = value;
        }
        cli.EnsureAllUsed();
        return overrides;
    }

    private static string? SizeText(string? s, string option)
    {
        if (s is null) return null;
        try { ByteSize.Parse(s); return s; }
        catch (FormatException e) { throw new CliException($"option --{option}: {e.Message}"); }
    }

    public static string Help() => string.Join(Environment.NewLine,
        Options.Select(o => $"             --{o.Option,-20} {o.Help}"));
}
