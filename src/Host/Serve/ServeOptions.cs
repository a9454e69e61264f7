using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace ActorQuery.Host.Serve;

/// <summary>
/// Everything <c>serve</c> can be told, bound from the "ActorQuery" section: appsettings.json, then environment
/// variables (<c>ACTORQUERY__MAXQUEUE=128</c>), then the command line (<c>--max-queue 128</c>), later winning.
/// Sizes accept suffixes (<c>512MiB</c>, <c>8GiB</c>, <c>2GB</c>) or plain bytes.
/// </summary>
public sealed class ServeOptions
{
    public const string Section = "ActorQuery";

    /// <summary>A Hugging Face checkpoint folder (config.json, tokenizer.json, *.safetensors).</summary>
    public string ModelFolder { get; set; } = "models/default";
    /// <summary>float32, bfloat16 or auto (DeviceAndDtype.ResolveDtypes: bf16 where the device computes it fast, bf16
    /// weights under float32 arithmetic for a bf16 checkpoint on a CPU without bf16 instructions, else float32).</summary>
    public string Dtype { get; set; } = "auto";
    /// <summary>cpu, cuda, cuda:N, mps or auto.</summary>
    public string Device { get; set; } = "auto";
    public int WorkersPerNode { get; set; } = 1;
    /// <summary>The memory budget the watchdog's marks are fractions of; "auto": the machine's (or cgroup's) memory.</summary>
    public string MemoryLimit { get; set; } = "auto";
    /// <summary>Above this fraction of the limit, workers are asked to clean up.</summary>
    public double CleanupMark { get; set; } = 0.5;
    /// <summary>Above this fraction, the router pauses admission until memory is back under the cleanup mark.</summary>
    public double PauseMark { get; set; } = 0.7;
    public int MaxInFlight { get; set; } = 8;
    public int MaxQueue { get; set; } = 64;
    public double DefaultDeadlineSeconds { get; set; } = 120;
    public int CacheEntries { get; set; } = 1024;
    public string CacheMaxBytes { get; set; } = "64MiB";
    /// <summary>Where Kestrel listens; several separated by ';'.</summary>
    public string Urls { get; set; } = "http://localhost:8000";
    public string LogFolder { get; set; } = "logs";
    /// <summary>Verbose, Debug, Information, Warning, Error or Fatal.</summary>
    public string LogLevel { get; set; } = "Information";
    public double DrainTimeoutSeconds { get; set; } = 30;
    public string MaxBodyBytes { get; set; } = "1MiB";
    public int DefaultMaxTokens { get; set; } = 256;
    /// <summary>KV-cache bytes each worker's engine may hold for all its sequences.</summary>
    public string KvCacheSize { get; set; } = "1GiB";
    /// <summary>Most sequences one worker advances per forward pass.</summary>
    public int MaxBatch { get; set; } = 16;
    /// <summary>Random weights of the model folder's config (benchmarks without a download).</summary>
    public bool DummyWeights { get; set; }
    /// <summary>Akka.Cluster: roles, remoting address, seed nodes (section ActorQuery:Cluster).</summary>
    public ClusterServeOptions Cluster { get; set; } = new();

    public static readonly string[] LogLevels = ["Verbose", "Debug", "Information", "Warning", "Error", "Fatal"];

    /// <summary>Null: work it out from the machine.</summary>
    public long? MemoryLimitBytes => MemoryLimit.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null : ByteSize.Parse(MemoryLimit);
    public long CacheMaxBytesValue => ByteSize.Parse(CacheMaxBytes);
    public long MaxBodyBytesValue => ByteSize.Parse(MaxBodyBytes);
    public long KvCacheBytes => ByteSize.Parse(KvCacheSize);
    public TimeSpan DrainTimeout => TimeSpan.FromSeconds(DrainTimeoutSeconds);
    public TimeSpan DefaultDeadline => TimeSpan.FromSeconds(DefaultDeadlineSeconds);

    /// <summary>Binds and validates; throws <see cref="OptionsException"/> naming the option at fault.</summary>
    public static ServeOptions From(IConfiguration configuration)
    {
        var options = new ServeOptions();
        try { configuration.GetSection(Section).Bind(options); }
        catch (InvalidOperationException e)
        {
            // The binder's message names the key ("Failed to convert configuration value at 'ActorQuery:MaxQueue'...").
            throw new OptionsException(e.Message);
        }
        options.Validate();
        return options;
    }

    public void Validate()
    {
        Require(!string.IsNullOrWhiteSpace(ModelFolder), "ModelFolder", "must not be empty");
        Require(Dtype is "auto" or "float32" or "bfloat16", "Dtype", $"'{Dtype}' is not one of auto, float32, bfloat16");
        Require(Device is "auto" or "cpu" or "cuda" or "mps" || Device.StartsWith("cuda:", StringComparison.Ordinal), "Device",
            $"'{Device}' is not one of auto, cpu, cuda, cuda:N, mps");
        Require(WorkersPerNode is >= 0 and <= 64, "WorkersPerNode", "must be in [0, 64] (0: a gateway-only node)");
        Size(() => MemoryLimitBytes, "MemoryLimit", min: 1 << 20);
        Require(CleanupMark is > 0 and < 1, "CleanupMark", "must be in (0, 1)");
        Require(PauseMark is > 0 and <= 1, "PauseMark", "must be in (0, 1]");
        Require(CleanupMark < PauseMark, "CleanupMark", $"({CleanupMark}) must be below PauseMark ({PauseMark})");
        Require(MaxInFlight >= 1, "MaxInFlight", "must be >= 1");
        Require(MaxQueue >= 0, "MaxQueue", "must be >= 0");
        Require(DefaultDeadlineSeconds > 0 && double.IsFinite(DefaultDeadlineSeconds), "DefaultDeadlineSeconds", "must be > 0");
        Require(CacheEntries >= 0, "CacheEntries", "must be >= 0 (0 turns the cache off)");
        Size(() => CacheMaxBytesValue, "CacheMaxBytes", min: 0);
        Require(Urls.Split(';', StringSplitOptions.RemoveEmptyEntries).All(u => Uri.TryCreate(u.Trim(), UriKind.Absolute, out var uri)
            && uri.Scheme is "http" or "https"), "Urls", $"'{Urls}' is not a ';'-separated list of http(s) URLs");
        Require(!string.IsNullOrWhiteSpace(LogFolder), "LogFolder", "must not be empty");
        Require(LogLevels.Contains(LogLevel, StringComparer.OrdinalIgnoreCase), "LogLevel", $"'{LogLevel}' is not one of {string.Join(", ", LogLevels)}");
        Require(DrainTimeoutSeconds >= 0 && DrainTimeoutSeconds <= 3600, "DrainTimeoutSeconds", "must be in [0, 3600]");
        Size(() => MaxBodyBytesValue, "MaxBodyBytes", min: 1024, max: 64L << 20);
        Require(DefaultMaxTokens >= 1, "DefaultMaxTokens", "must be >= 1");
        Size(() => KvCacheBytes, "KvCacheSize", min: 1 << 20);
        Require(MaxBatch is >= 1 and <= 1024, "MaxBatch", "must be in [1, 1024]");
        Cluster.Validate();
    }

    internal static void Require(bool ok, string name, string reason)
    {
        if (!ok) throw new OptionsException($"{Section}:{name} {reason}");
    }

    private static void Size(Func<long?> read, string name, long min, long max = long.MaxValue)
    {
        long? value;
        try { value = read(); }
        catch (FormatException e) { throw new OptionsException($"{Section}:{name} {e.Message}"); }
        if (value is { } v) Require(v >= min && v <= max, name, $"must be in [{ByteSize.Format(min)}, {ByteSize.Format(max)}]");
    }
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

    public IReadOnlyList<string> RoleList => Split(Roles).Select(r => r.ToLowerInvariant()).Distinct().ToList();
    public IReadOnlyList<string> SeedNodeList => Split(SeedNodes);

    private static List<string> Split(string s) => s.Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    public void Validate()
    {
        const string p = Section + ":";
        var roles = RoleList;
        ServeOptions.Require(roles.Count > 0 && roles.All(r => r is "gateway" or "worker"), p + "Roles",
            $"'{Roles}' is not a comma-separated list of gateway, worker");
        ServeOptions.Require(!string.IsNullOrWhiteSpace(Hostname), p + "Hostname", "must not be empty");
        ServeOptions.Require(Port is >= 0 and <= 65535, p + "Port", "must be in [0, 65535] (0: a free port)");
        ServeOptions.Require(!string.IsNullOrWhiteSpace(SystemName) && SystemName.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'),
            p + "SystemName", $"'{SystemName}' must be ASCII letters, digits, '-' or '_'");
        foreach (var seed in SeedNodeList)
        {
            bool ok = Akka.Actor.Address.TryParse(seed, out var a) && a.Host is not null && a.Port is > 0;
            ServeOptions.Require(ok, p + "SeedNodes", $"'{seed}' is not an address like akka.tcp://{SystemName}@10.0.0.1:4053");
            ServeOptions.Require(a!.System == SystemName, p + "SeedNodes", $"'{seed}' names system '{a.System}', this node is '{SystemName}'");
        }
    }
}

public sealed class OptionsException(string message) : Exception(message);

/// <summary>"8GiB", "512MiB", "2GB", "1048576" → bytes. Written by hand: no package on our feed does just this.</summary>
public static class ByteSize
{
    private static readonly (string Suffix, long Factor)[] Units =
    [
        ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40),
        ("KB", 1000L), ("MB", 1000_000L), ("GB", 1000_000_000L), ("TB", 1000_000_000_000L), ("B", 1L),
    ];

    public static long Parse(string text)
    {
        string s = text.Trim();
        foreach (var (suffix, factor) in Units)
        {
            if (!s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)) continue;
            string number = s[..^suffix.Length].Trim();
            if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v >= 0 && double.IsFinite(v)
                && v * factor < long.MaxValue)
                return (long)(v * factor);
            break;
        }
        if (long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long bytes) && bytes >= 0) return bytes;
        throw new FormatException($"'{text}' is not a size (bytes, or a number with KiB, MiB, GiB, KB, MB, GB)");
    }

    public static string Format(long bytes) =>
        bytes == long.MaxValue ? "unlimited"
        : bytes >= 1L << 30 && bytes % (1L << 30) == 0 ? $"{bytes >> 30}GiB"
        : bytes >= 1L << 20 && bytes % (1L << 20) == 0 ? $"{bytes >> 20}MiB"
        : bytes >= 1L << 10 && bytes % (1L << 10) == 0 ? $"{bytes >> 10}KiB"
        : $"{bytes}B";
}
