using System.Globalization;
using System.Net;
using System.Text;
using ActorQuery.Bench.Load;

namespace ActorQuery.Bench;

/// <summary>
/// <c>soak</c>: many requests of mixed lengths against a running server, some of whose clients hang up mid-stream,
/// then two checks: every request answered, cancelled by its client or refused (none errored, none left
/// without an answer), and the server's resident memory after the run within 5% of its level after the warm-up.
/// Writes a markdown result; exit code 0 when both checks pass, 1 when not.
/// </summary>
internal static class SoakCommand
{
    public static int Run(string[] args) => RunAsync(args, Console.Out).GetAwaiter().GetResult();

    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        var a = new CliArgs(args, new HashSet<string>());
        var url = a.String("url") ?? "http://127.0.0.1:8000";
        int requests = a.Int("requests", 1, 10_000_000) ?? 5000;
        int concurrency = a.Int("concurrency", 1, 4096) ?? 16;
        int warmup = a.Int("warmup", 0, 1_000_000) ?? 1000; // RSS settles within about 1,000 requests (see README)
        int maxTokens = a.Int("max-tokens", 1, 1 << 20) ?? 64;
        double disconnect = a.Float("disconnect-fraction", 0, 1) ?? 0.1;
        int seed = a.Int("seed") ?? 2026;
        int? pid = a.Int("server-pid", 1);
        double idle = a.Float("idle-seconds", 0, 3600) ?? 10;
        double tolerance = a.Float("rss-tolerance", 0, 1) ?? 0.05;
        int segments = a.Int("rss-samples", 1, 1000) ?? 5;
        double timeout = a.Float("request-timeout", 1, 86_400) ?? 300;
        double maxSeconds = a.Float("max-seconds", 1, 86_400 * 7) ?? 86_400;
        var model = a.String("model-note");
        var outDir = a.String("out") ?? Path.Combine("bench", "results");
        a.EnsureAllUsed();
        using var http = LoadHttp.Create(url, timeout);
        if (pid is { } p && !File.Exists($"/proc/{p}/status")) throw new CliException($"option --server-pid: no process {p}");

        try
        {
            using var ready = await http.GetAsync("/health/ready");
            if (ready.StatusCode != HttpStatusCode.OK)
                throw new CliException($"the server at {url} is not ready (/health/ready answered {(int)ready.StatusCode})");
        }
        catch (HttpRequestException e) { throw new CliException($"no server at {url}: {e.Message}"); }

        var client = new CompletionClient(http);
        var memory = new ServerMemory(http, pid);
        var started = DateTime.UtcNow;
        string loadBefore = MachineInfo.LoadAverage();
        var cap = TimeSpan.FromSeconds(maxSeconds);

        var warm = SoakMix.Create(warmup, maxTokens, disconnect, seed + 1);
        Console.Error.WriteLine($"soak: warm-up, {warmup} requests at concurrency {concurrency} ...");
        var (warmResults, warmWall) = await ClosedLoop.RunAsync(client, concurrency, warmup, cap, i => warm[i]);
        await Settle(memory, idle);
        long rssWarm = await memory.ResidentBytesAsync();
        Console.Error.WriteLine($"soak: RSS after warm-up {rssWarm / 1048576.0:F1} MiB ({warmWall:F0} s); {requests} requests ...");

        var mix = SoakMix.Create(requests, maxTokens, disconnect, seed);
        // The run in segments with an RSS reading after each (under load, no idle): a leak climbs with every
        // segment, while an allocator or heap still settling levels off.
        var results = new List<RequestResult>();
        var trend = new List<long>();
        var runClock = System.Diagnostics.Stopwatch.StartNew();
        for (int s = 0; s < segments; s++)
        {
            int from = requests * s / segments, to = requests * (s + 1) / segments;
            var left = cap - runClock.Elapsed;
            if (left <= TimeSpan.Zero) break;
            var (part, _) = await ClosedLoop.RunAsync(client, concurrency, to - from, left, i => mix[from + i]);
            results.AddRange(part);
            trend.Add(await memory.ResidentBytesAsync());
            Console.Error.WriteLine($"soak: {to}/{requests} requests, RSS {trend[^1] / 1048576.0:F1} MiB");
        }
        double wall = runClock.Elapsed.TotalSeconds;
        bool drained = await Settle(memory, idle);
        long rssAfter = await memory.ResidentBytesAsync();

        int Count(RequestOutcome o) => results.Count(r => r.Outcome == o);
        int notSent = requests - results.Count;
        int unanswered = Count(RequestOutcome.Unanswered) + notSent;
        double change = (rssAfter - rssWarm) / (double)rssWarm;
        bool countsOk = Count(RequestOutcome.Errored) == 0 && unanswered == 0;
        bool memoryOk = Math.Abs(change) <= tolerance;

        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"# Soak, {started:yyyy-MM-dd HH:mm} UTC").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {MachineInfo.Describe()}; load average {loadBefore} before, {MachineInfo.LoadAverage()} after.");
        md.AppendLine(CultureInfo.InvariantCulture, $"- Server: `{url}`{(model is null ? "" : $", {model}")}.");
        md.AppendLine(CultureInfo.InvariantCulture, $"- Load: {requests} requests after {warmup} warm-up requests, closed loop at concurrency {concurrency}, seed {seed}: " +
                      $"1–12 arithmetic questions per prompt, 1–{maxTokens} new tokens (half with `ignore_eos`), 25% greedy, " +
                      $"60% streamed `/v1/completions`, 20% streamed `/query`, 20% not streamed; {disconnect:P0} of the clients hang up " +
                      $"(streams after 1 to max/2 chunks, plain requests after 5–200 ms).");
        md.AppendLine(CultureInfo.InvariantCulture, $"- Ran {wall:F0} s ({results.Count / wall:F1} requests/s); memory: {memory.Source}, read after {idle:0} s idle.");
        md.AppendLine();
        md.AppendLine("| answered | cancelled by client | refused (429/503) | errored | unanswered | total |");
        md.AppendLine("|---:|---:|---:|---:|---:|---:|");
        md.AppendLine(CultureInfo.InvariantCulture,
            $"| {Count(RequestOutcome.Answered)} | {Count(RequestOutcome.CancelledByClient)} | {Count(RequestOutcome.Refused)} | " +
            $"{Count(RequestOutcome.Errored)} | {unanswered} | {requests} |");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"| RSS after warm-up | RSS after the run | change |");
        md.AppendLine("|---:|---:|---:|");
        md.AppendLine(CultureInfo.InvariantCulture, $"| {rssWarm / 1048576.0:F1} MiB | {rssAfter / 1048576.0:F1} MiB | {change:+0.0%;-0.0%;0.0%} |");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"RSS during the run, after each {requests / segments} requests (under load): " +
                      $"{string.Join(", ", trend.Select(b => (b / 1048576.0).ToString("F1", CultureInfo.InvariantCulture)))} MiB.");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- Every request answered, cancelled or refused (none errored or unanswered): **{(countsOk ? "yes" : "no")}**");
        md.AppendLine(CultureInfo.InvariantCulture, $"- RSS within {tolerance:P0} of its level after warm-up: **{(memoryOk ? "yes" : "no")}**");
        md.AppendLine(CultureInfo.InvariantCulture, $"- Server idle afterwards (nothing in flight or queued): **{(drained ? "yes" : "no")}**");
        foreach (var group in results.Where(r => r.Outcome is RequestOutcome.Errored or RequestOutcome.Unanswered)
                     .GroupBy(r => $"{r.Outcome} {r.Status}: {r.Error}").Take(5))
            md.AppendLine(CultureInfo.InvariantCulture, $"- {group.Count()}× {group.Key}");
        if (notSent > 0) md.AppendLine(CultureInfo.InvariantCulture, $"- {notSent} requests not sent: the {maxSeconds:0} s cap passed.");

        Directory.CreateDirectory(outDir);
        string path = Path.Combine(outDir, $"soak-{started:yyyyMMdd-HHmmss}.md");
        await File.WriteAllTextAsync(path, md.ToString());
        output.WriteLine(md.ToString());
        output.WriteLine($"result: {path}");
        return countsOk && memoryOk && drained ? 0 : 1;
    }

    /// <summary>Waits for the server to finish what the clients left (cancelled streams end at the next step), then idles.</summary>
    private static async Task<bool> Settle(ServerMemory memory, double idleSeconds)
    {
        bool drained = await memory.WaitIdleAsync(TimeSpan.FromSeconds(60));
        if (idleSeconds > 0) await Task.Delay(TimeSpan.FromSeconds(idleSeconds));
        return drained;
    }
}
