using System.Globalization;

namespace ActorQuery.Contracts;

/// <summary>
/// A node's memory budget, worked out once at start: the real limit (the smallest of physical memory, the memory
/// cgroup's limit and <c>--memory-limit</c>; see <see cref="MemoryLimits"/>) times the utilization, less what the process
/// already holds, and never more than what is free now less the share the utilization leaves free. The node's workers
/// share it equally: each plans its weights, activations and KV pool inside <see cref="PerWorkerBytes"/>.
/// </summary>
/// <param name="HeldBytes">Resident bytes of the process when the plan was made (runtime, libraries), before any model.</param>
/// <param name="AvailableBytes">Memory free for this process to grow into now (MemAvailable, or the cgroup's limit less its working set).</param>
public sealed record MemoryBudget(long LimitBytes, string LimitSource, double Utilization, long HeldBytes, long AvailableBytes, int Workers)
{
    /// <summary>The share of the limit the plan may use (the server's <c>--memory-utilization</c>).</summary>
    public const double DefaultUtilization = 0.9;

    /// <summary>What the workers together may add to the process.</summary>
    public long BudgetBytes =>
        Math.Max(0, Math.Min((long)(LimitBytes * Utilization) - HeldBytes, AvailableBytes - (long)(LimitBytes * (1 - Utilization))));

    public long PerWorkerBytes => Workers <= 0 ? 0 : BudgetBytes / Workers;

    /// <summary>The accelerator's own budget, where the workers plan in device memory (CUDA); null on the CPU.</summary>
    public DeviceBudget? Device { get; init; }

    /// <summary>"cgroup limit 1.6 GiB x 0.9, less 180 MiB held": the terms of <see cref="BudgetBytes"/>, for errors and logs.</summary>
    public string Describe()
    {
        var s = $"{LimitSource} {MemorySize.Format(LimitBytes)} x {Utilization.ToString("0.##", CultureInfo.InvariantCulture)}, less {MemorySize.Format(HeldBytes)} held";
        if (AvailableBytes - (long)(LimitBytes * (1 - Utilization)) < (long)(LimitBytes * Utilization) - HeldBytes)
            s += $", capped by {MemorySize.Format(AvailableBytes)} free now";
        if (Workers > 1) s += $", shared by {Workers} workers";
        return s;
    }
}

/// <summary>A device's memory budget beside the host's: its total, where that reading comes from, and what the workers
/// on it may use (total × utilization, less what was in use on it before they loaded).</summary>
public sealed record DeviceBudget(string Source, long TotalBytes, long BudgetBytes);

/// <summary>The plan does not fit the budget (or an explicit KV size is larger than what fits). The message is one line
/// naming every term; the server refuses to start with it (exit code 2).</summary>
public sealed class MemoryPlanException(string message) : Exception(message);

/// <summary>
/// The plan's arithmetic: what the KV pool gets once weights, load overhead and the activation peak are in. Torch-free,
/// so that the Host (before loading) and the engine (after measuring) apply the same rule.
/// </summary>
public static class MemoryPlanner
{
    /// <summary>KV tokens a worker must be able to hold at least: one sequence of this many tokens, or the model's
    /// context when it is shorter.</summary>
    public const int MinimumKvTokens = 2048;

    public static long MinimumKvBytes(long kvBytesPerToken, int contextLength) =>
        kvBytesPerToken * Math.Min(MinimumKvTokens, Math.Max(1, contextLength));

    /// <summary>The most KV the scheduler can ever hold: <paramref name="maxBatch"/> sequences of the model's whole context,
    /// each in whole blocks. Auto stops there, so that a small model does not commit the whole machine to blocks that no
    /// step could fill.</summary>
    public static long MaximumKvBytes(long kvBytesPerToken, int contextLength, int maxBatch, int blockSize)
    {
        long block = Math.Max(1, blockSize);
        long perSequence = (Math.Max(1, contextLength) + block - 1) / block * block;
        return kvBytesPerToken * perSequence * Math.Max(1, maxBatch);
    }

    /// <summary>
    /// The KV pool's bytes: <paramref name="explicitKvBytes"/> when given (refused when it does not fit), else all that
    /// <paramref name="budgetBytes"/> leaves after weights, overhead and activations, up to <paramref name="maximumKvBytes"/>
    /// (see <see cref="MaximumKvBytes"/>); refused when that is less than <paramref name="minimumKvBytes"/>, suggesting
    /// <paramref name="smallerFormat"/> (the --dtype whose weights are smaller, null where there is none). <paramref name="budgetTerms"/> says where the budget comes from (see
    /// <see cref="MemoryBudget.Describe"/>).
    /// </summary>
    public static long KvBytes(long budgetBytes, string budgetTerms, long weightBytes, long overheadBytes, long activationBytes,
        long minimumKvBytes, long? explicitKvBytes, long maximumKvBytes = long.MaxValue, string? smallerFormat = "bfloat16")
    {
        long rest = budgetBytes - weightBytes - overheadBytes - activationBytes;
        string Terms(string kvTerm, long kv) =>
            $"weights {MemorySize.Format(weightBytes)}" + (overheadBytes > 0 ? $" + load overhead {MemorySize.Format(overheadBytes)}" : "")
            + (activationBytes > 0 ? $" + activations {MemorySize.Format(activationBytes)}" : "")
            + $" + {kvTerm} {MemorySize.Format(kv)} > budget {MemorySize.Format(budgetBytes)} ({budgetTerms})";
        if (explicitKvBytes is { } kv)
        {
            if (kv > rest)
                throw new MemoryPlanException(Terms("KV cache (--kv-cache-size)", kv)
                    + $"; at most {MemorySize.Format(Math.Max(0, rest))} fits: use --kv-cache-size auto or a smaller size");
            return kv;
        }
        if (rest < minimumKvBytes)
            throw new MemoryPlanException(Terms("minimum KV", minimumKvBytes)
                + (smallerFormat is not null ? $"; try --dtype {smallerFormat}, a smaller model or a larger limit" : "; try a smaller model or a larger limit"));
        return Math.Min(rest, Math.Max(minimumKvBytes, maximumKvBytes));
    }
}

/// <summary>Bytes as people read them in logs and errors: "15.2 GiB", "412 MiB", "800 KiB".</summary>
public static class MemorySize
{
    public static string Format(long bytes)
    {
        double b = bytes;
        string sign = b < 0 ? "-" : "";
        b = Math.Abs(b);
        return sign + (b >= 1L << 30 ? $"{(b / (1L << 30)).ToString("0.0#", CultureInfo.InvariantCulture)} GiB"
            : b >= 1L << 20 ? $"{(b / (1L << 20)).ToString("0", CultureInfo.InvariantCulture)} MiB"
            : b >= 1L << 10 ? $"{(b / (1L << 10)).ToString("0", CultureInfo.InvariantCulture)} KiB"
            : $"{b.ToString("0", CultureInfo.InvariantCulture)} B");
    }
}

/// <summary>"8GiB", "512MiB", "2GB", "1048576" → bytes. Written by hand: no package on our feed does just this. The
/// settings and the admin API (POST /admin/faults) read sizes with it.</summary>
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
