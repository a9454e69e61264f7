using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ActorQuery.Contracts;
using ActorQuery.Bench.Load;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization;

namespace ActorQuery.Bench;

/// <summary>
/// <c>http</c> (the bench tool's verb): drives a running server over real HTTP with streaming <c>/v1/completions</c> requests of fixed
/// prompt and output lengths (a prompt of exactly N token ids built with the model's tokenizer; <c>max_tokens</c>
/// with <c>ignore_eos</c>), closed loop at each concurrency level, and reports throughput and latency percentiles
/// as a markdown table, a PNG plot and JSON. With <c>--model</c> it first measures the engine alone in this process
/// (one stream, same lengths, through <see cref="BenchCommand"/>'s step timer) in turns with single HTTP requests, so
/// that one report holds both sides of the "HTTP single stream ≥ 90% of the engine" target measured in the same
/// minutes: this machine's speed drifts by 10–20% from one minute to the next, more than the gap being measured. The
/// server sits idle while the engine runs, and the engine while a request runs.
/// </summary>
internal static class HttpBenchCommand
{
    public static int Run(string[] args) => RunAsync(args, Console.Out).GetAwaiter().GetResult();

    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        var a = new CliArgs(args, new HashSet<string> { "dummy-weights", "no-engine" });
        var url = a.String("url") ?? "http://127.0.0.1:8000";
        var levels = a.IntList("concurrency") ?? [1, 4, 16, 64];
        int inputTokens = a.Int("input-tokens", 1, 1 << 20) ?? 128;
        int outputTokens = a.Int("output-tokens", 1, 1 << 20) ?? 128;
        int perStream = a.Int("requests-per-stream", 1, 10_000) ?? 4;
        double maxSeconds = a.Float("max-seconds", 1, 86_400) ?? 300;
        int warmup = a.Int("warmup", 0, 1000) ?? 2;
        float temperature = a.Float("temperature", 0, 10) ?? 0;
        double timeout = a.Float("request-timeout", 1, 86_400) ?? 1800;
        var model = a.String("model");
        var tokenizerPath = a.String("tokenizer") ?? model ?? "models/shapes/qwen2.5-0.5b";
        var engineOptions = EngineCli.Options(a, model ?? ""); // the engine-alone figure: --dtype, --device, --threads, --dummy-weights
        bool noEngine = a.Flag("no-engine");
        int engineRepeats = a.Int("engine-repeats", 1, 100) ?? 5;
        var serverArgs = a.String("server-args");
        var outDir = a.String("out") ?? Path.Combine("bench", "results");
        a.EnsureAllUsed();
        if (levels.Any(c => c < 1)) throw new CliException("option --concurrency: every level must be >= 1");
        using var http = LoadHttp.Create(url, timeout);

        var tokenizer = EngineCli.LoadTokenizer(tokenizerPath);
        var prompts = new PromptIds(tokenizer, inputTokens);
        string loadBefore = MachineInfo.LoadAverage();
        var started = DateTime.UtcNow;

        var health = await ReadHealth(http, url);
        var client = new CompletionClient(http);
        int next = 1;
        LoadRequest Request(int maxTokens) => new(new JsonArray(prompts.At(next++).Select(id => (JsonNode)id).ToArray()),
            maxTokens, IgnoreEos: true, Temperature: temperature);

        for (int i = 0; i < warmup; i++)
        {
            var r = await client.SendAsync(Request(Math.Min(outputTokens, 16)));
            if (r.Outcome != RequestOutcome.Answered)
                throw new CliException($"warm-up request failed: {r.Outcome} {r.Status} {r.Error}");
        }

        EngineBaseline? engine = null;
        if (model is not null && !noEngine)
        {
            Console.Error.WriteLine($"engine alone: {model} ({engineOptions.Dtype}), prompt {inputTokens}, {outputTokens} tokens, " +
                                    $"{engineRepeats} runs in turns with as many single HTTP requests ...");
            engine = await EngineBaseline.MeasureAsync(engineOptions, () => prompts.At(next++).ToArray(), outputTokens, engineRepeats, async () =>
            {
                var r = await client.SendAsync(Request(outputTokens));
                if (r.Outcome != RequestOutcome.Answered)
                    throw new CliException($"a single request between the engine's runs failed: {r.Outcome} {r.Status} {r.Error}");
                return r.OutputTokens / r.Seconds;
            });
            Console.Error.WriteLine($"engine alone: {engine.EndToEndTokensPerSecond:F2} tok/s end to end, decode {engine.DecodeTokensPerSecond:F2} tok/s " +
                                    $"({engine.Dtype}); single HTTP requests in turn with it {engine.HttpTokensPerSecond:F2} tok/s");
        }

        var summaries = new List<LevelSummary>();
        foreach (int c in levels)
        {
            Console.Error.WriteLine($"concurrency {c}: {c * perStream} requests (cap {maxSeconds:F0} s) ...");
            var (results, wall) = await ClosedLoop.RunAsync(client, c, c * perStream, TimeSpan.FromSeconds(maxSeconds),
                _ => { lock (prompts) return Request(outputTokens); });
            var s = LevelSummary.Of(c, results, wall);
            summaries.Add(s);
            Console.Error.WriteLine($"concurrency {c}: {s.OutputTokensPerSecond:F2} tok/s, {s.Answered}/{s.Requests} answered, " +
                                    $"TTFT p50 {s.TtftP50Ms:F0} ms, ITL p50 {s.ItlP50Ms:F0} ms p99 {s.ItlP99Ms:F0} ms" +
                                    (s.FirstError is null ? "" : $"; first error: {s.FirstError}"));
        }

        var report = new HttpBenchReport(started, url, health, serverArgs, model, engineOptions.Dtype, engineOptions.DummyWeights, tokenizerPath, inputTokens,
            outputTokens, temperature, warmup, perStream, maxSeconds, loadBefore, MachineInfo.LoadAverage(), engine, summaries);
        Directory.CreateDirectory(outDir);
        string stem = Path.Combine(outDir, $"http-bench-{started:yyyyMMdd-HHmmss}");
        var markdown = report.Markdown(Path.GetFileName(stem + ".png"));
        await File.WriteAllTextAsync(stem + ".md", markdown);
        await File.WriteAllTextAsync(stem + ".json", JsonSerializer.Serialize(report.Json(), new JsonSerializerOptions
        {
            WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        }));
        BenchPlot.Save(stem + ".png", summaries, engine?.EndToEndTokensPerSecond, report.ShortTitle);
        output.WriteLine(markdown);
        output.WriteLine($"results: {stem}.md, {stem}.png, {stem}.json");
        return summaries.All(s => s.Errors == 0) ? 0 : 1;
    }

    private static async Task<JsonElement?> ReadHealth(HttpClient http, string url)
    {
        try
        {
            using var ready = await http.GetAsync("/health/ready");
            if (ready.StatusCode != HttpStatusCode.OK)
                throw new CliException($"the server at {url} is not ready (/health/ready answered {(int)ready.StatusCode})");
            using var doc = JsonDocument.Parse(await http.GetStringAsync("/health"));
            return doc.RootElement.Clone();
        }
        catch (HttpRequestException e)
        {
            throw new CliException($"no server at {url}: {e.Message}");
        }
    }
}

/// <summary>
/// Prompts of exactly N token ids: a request number, then English prose, tokenized by the served model's own
/// tokenizer (so every id is a real token of its vocabulary) and cut or repeated to length. The number makes every
/// prompt different, so that no answer cache or prefix reuse flatters the figures.
/// </summary>
internal sealed class PromptIds(ITokenizer tokenizer, int length)
{
    private const string Prose =
        "The history of computing is a story of machines that learned to keep more in memory and to do more with " +
        "each step. Early engineers counted every word of storage; later ones counted every cycle of the processor. " +
        "Today a language model answers questions by reading all of its weights once for every token it writes, " +
        "so the speed of memory sets the pace for one reader, while many readers together can share each pass. ";

    private readonly IReadOnlyList<int> _prose = tokenizer.Encode(Prose);

    public IReadOnlyList<int> At(int number)
    {
        var ids = new List<int>(length + _prose.Count);
        ids.AddRange(tokenizer.Encode($"Request {number}. "));
        while (ids.Count < length) ids.AddRange(_prose);
        return ids.GetRange(0, length);
    }
}

/// <summary>The engine alone, one stream, timed step by step with <see cref="BenchCommand.Run(InferenceEngine, long, int[], int, out double)"/>,
/// each run followed by one HTTP request of the same lengths (<see cref="HttpTokensPerSecond"/>: the medians of both
/// come from the same minutes). Each run and request has a prompt of its own: the engine caches prompt prefixes, and a
/// repeated prompt would skip its prefill and make the engine look faster than any request can be.</summary>
internal sealed record EngineBaseline(string Dtype, double EndToEndTokensPerSecond, double DecodeTokensPerSecond, int Repeats,
                                      double HttpTokensPerSecond)
{
    public static async Task<EngineBaseline> MeasureAsync(EngineOptions options, Func<int[]> nextPrompt, int outputTokens, int repeats,
                                                          Func<Task<double>> httpRequest)
    {
        using var engine = EngineCli.Load(options);
        BenchCommand.Run(engine, 1, nextPrompt(), Math.Min(outputTokens, 8), out _); // warm-up
        var endToEnd = new List<double>();
        var decode = new List<double>();
        var http = new List<double>();
        for (int r = 0; r < repeats; r++)
        {
            var steps = BenchCommand.Run(engine, r + 2, nextPrompt(), outputTokens, out _);
            endToEnd.Add(steps.Count / steps.Sum());
            if (steps.Count > 1) decode.Add((steps.Count - 1) / steps.Skip(1).Sum());
            http.Add(await httpRequest());
        }
        return new EngineBaseline(engine.Model.Dtype.ToString(), BenchCommand.Median(endToEnd),
            decode.Count > 0 ? BenchCommand.Median(decode) : double.NaN, repeats, BenchCommand.Median(http));
    }
}
