using System.Globalization;
using System.Text;
using System.Text.Json;
using ActorQuery.Host.Cli;

namespace ActorQuery.Bench.Load;

/// <summary>The markdown and JSON of one <c>http</c> run of the bench tool: machine, server, load, the table and its targets.</summary>
internal sealed record HttpBenchReport(
    DateTime Started, string Url, JsonElement? Health, string? ServerArgs, string? Model, string Dtype, bool DummyWeights,
    string Tokenizer, int InputTokens, int OutputTokens, float Temperature, int Warmup, int RequestsPerStream,
    double MaxSeconds, string LoadBefore, string LoadAfter, EngineBaseline? Engine, IReadOnlyList<LevelSummary> Levels)
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Short enough for the plot's first panel (a third of 1500 px).</summary>
    public string ShortTitle => $"{ModelName}, {Dtype}, {InputTokens} → {OutputTokens} tokens";

    private string ModelName => Model is not null ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Model))
        : Health is { } h && h.TryGetProperty("model", out var m) ? m.GetString() ?? "?" : "?";

    public string Markdown(string pngName)
    {
        var md = new StringBuilder();
        md.AppendLine(Inv, $"# HTTP load benchmark, {Started:yyyy-MM-dd HH:mm} UTC").AppendLine();
        md.AppendLine(Inv, $"- Machine: {MachineInfo.Describe()}; load average {LoadBefore} before, {LoadAfter} after.");
        string started = ServerArgs is null ? "" : $", started as `serve {ServerArgs}`";
        md.AppendLine(Inv, $"- Server: `{Url}`, model `{Model ?? ModelName}`{(DummyWeights ? " with random weights" : "")}, dtype {Dtype}{started}; {HealthSummary()}.");
        md.AppendLine(Inv, $"- Load: streaming `POST /v1/completions`, prompt of exactly {InputTokens} token ids (tokenizer `{Tokenizer}`, " +
                           $"a different prompt per request), `max_tokens` {OutputTokens} with `ignore_eos`, temperature {Temperature:0.##}; " +
                           $"closed loop ({RequestsPerStream} requests per stream, at most {MaxSeconds:0} s per level), after {Warmup} warm-up requests.");
        md.AppendLine("- TTFT: request sent → first chunk with text. ITL: gaps between consecutive chunks of every answered stream, pooled. " +
                      "Output tokens/s: answered requests' `usage.completion_tokens` over the level's wall time.");
        md.AppendLine();
        md.AppendLine("| streams | requests | errors | output tok/s | req/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | ITL p99 ÷ p50 | wall s |");
        md.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var l in Levels)
            md.AppendLine(Inv, $"| {l.Concurrency} | {l.Requests} | {l.Errors} | {l.OutputTokensPerSecond:F2} | {l.RequestsPerSecond:F3} | " +
                               $"{l.TtftP50Ms:F0} | {l.TtftP99Ms:F0} | {l.ItlP50Ms:F0} | {l.ItlP99Ms:F0} | {l.ItlP99Ms / l.ItlP50Ms:F2} | {l.WallSeconds:F1} |");
        md.AppendLine();
        if (Engine is { } e)
            md.AppendLine(Inv, $"Engine alone (in the benchmark's process before the HTTP levels, same model folder, {e.Dtype}, one stream, " +
                               $"prompt {InputTokens} (a different one each run, as each request's), {OutputTokens} tokens, median of {e.Repeats}): " +
                               $"**{e.EndToEndTokensPerSecond:F2} tok/s** end to end " +
                               $"(prefill included), decode alone {e.DecodeTokensPerSecond:F2} tok/s. In turn with those runs, {e.Repeats} single " +
                               $"HTTP requests of the same lengths: **{e.HttpTokensPerSecond:F2} tok/s** (median; output tokens over each " +
                               $"request's time, first token included).").AppendLine();
        else
            md.AppendLine("Engine alone: not measured in this run (give `--model` and leave out `--no-engine`).").AppendLine();
        md.AppendLine("Targets:").AppendLine();
        foreach (var line in Targets()) md.AppendLine(Inv, $"- {line}");
        foreach (var l in Levels.Where(l => l.FirstError is not null))
            md.AppendLine(Inv, $"- {l.Concurrency} streams, first failure: {l.FirstError}");
        md.AppendLine().AppendLine(Inv, $"![throughput and latency against concurrency]({pngName})");
        return md.ToString();
    }

    private IEnumerable<string> Targets()
    {
        var one = Levels.FirstOrDefault(l => l.Concurrency == 1);
        var sixteen = Levels.FirstOrDefault(l => l.Concurrency == 16);
        if (one is not null && sixteen is not null)
        {
            double x = sixteen.OutputTokensPerSecond / one.OutputTokensPerSecond;
            yield return Check($"16 streams ≥ 4× one stream: {sixteen.OutputTokensPerSecond:F2} ÷ {one.OutputTokensPerSecond:F2} = {x:F2}×", x >= 4);
        }
        else yield return "16 streams ≥ 4× one stream: needs levels 1 and 16.";
        if (Engine is { } e)
        {
            // The requests that ran in turn with the engine, not level 1: the level ran minutes later, and this machine's
            // speed drifts by more than the 10% being checked.
            double r = e.HttpTokensPerSecond / e.EndToEndTokensPerSecond;
            yield return Check($"HTTP single stream ≥ 90% of the engine alone (in turns): {e.HttpTokensPerSecond:F2} ÷ {e.EndToEndTokensPerSecond:F2} = {r:P0}", r >= 0.9);
        }
        else yield return "HTTP single stream ≥ 90% of the engine alone: needs the engine figure (--model).";
        if (sixteen is not null)
        {
            double r = sixteen.ItlP99Ms / sixteen.ItlP50Ms;
            yield return Check($"ITL p99 ≤ 3× p50 at 16 streams: {sixteen.ItlP99Ms:F0} ÷ {sixteen.ItlP50Ms:F0} ms = {r:F2}×", r <= 3);
        }
        else yield return "ITL p99 ≤ 3× p50 at 16 streams: needs level 16.";
    }

    private static string Check(string text, bool met) => $"{text} — **{(met ? "met" : "not met")}**";

    private string HealthSummary()
    {
        if (Health is not { } h) return "health not read";
        string Prop(string name) => h.TryGetProperty(name, out var v) ? v.ToString() : "?";
        int workers = h.TryGetProperty("workers", out var w) && w.ValueKind == JsonValueKind.Array ? w.GetArrayLength() : 0;
        return $"node `{Prop("node")}`, {workers} worker(s), max in flight {Prop("max_in_flight")}, max queue {Prop("max_queue")}";
    }

    public object Json() => new
    {
        Started, Url, Machine = MachineInfo.Describe(), LoadBefore, LoadAfter, ServerArgs, Model, Dtype, DummyWeights,
        Tokenizer, InputTokens, OutputTokens, Temperature, Warmup, RequestsPerStream, MaxSeconds,
        Engine, Levels, Targets = Targets().ToList(),
    };
}
