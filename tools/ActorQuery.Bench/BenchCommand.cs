using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;

namespace ActorQuery.Bench;

/// <summary>
/// <c>bench</c>: engine speed on a model (by default the Qwen2.5-0.5B shape with random weights) per dtype:
/// load time, prefill tokens/s, single-stream decode tokens/s at two prompt lengths, and the decode bound
/// that memory bandwidth sets (weight bytes read per token ÷ measured read bandwidth). Medians over repeats;
/// timings on a shared machine are noisy, so compare ratios from one run. With <c>--streams 1,4,16</c> it measures
/// many concurrent streams instead (<see cref="StreamsBench"/>).
/// </summary>
internal static class BenchCommand
{
    public static int Run(string[] args)
    {
        var a = new CliArgs(args, new HashSet<string>(EngineCli.Flags) { "profile", "grammar", "prefix-cache" });
        var model = a.String("model") ?? "models/shapes/qwen2.5-0.5b";
        bool dummy = a.Flag("dummy-weights") || a.String("model") is null;
        var dtypes = (a.String("dtypes") ?? "float32,bfloat16").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        int prefill = a.Int("prefill-tokens", 1, 32768) ?? 512;
        int decode = a.Int("decode-tokens", 2, 4096) ?? 32;
        int repeats = a.Int("repeats", 1, 100) ?? 3;
        var prompts = a.IntList("decode-prompt-lengths") ?? [16, 1024];
        var device = a.String("device") ?? "cpu";
        int threads = a.Int("threads", 0, 1024) ?? 0;
        var outPath = a.String("out");
        var streams = a.IntList("streams");
        int promptTokens = a.Int("prompt-tokens", 1, 32768) ?? 128;
        int outputTokens = a.Int("output-tokens", 1, 32768) ?? 128;
        int rounds = a.Int("rounds", 1, 100) ?? 2;
        int? maxTokensPerStep = a.Int("max-tokens-per-step", 1, 65536);
        bool profile = a.Flag("profile");
        bool grammar = a.Flag("grammar");
        var schemaFile = a.String("schema");
        int sequences = a.Int("sequences", 2, 100_000) ?? 40;
        bool prefixCache = a.Flag("prefix-cache");
        int prefixTokens = a.Int("prefix-tokens", 16, 32768) ?? 1000;
        int suffixTokens = a.Int("suffix-tokens", 1, 32768) ?? 24;
        a.Known("json", "ignore-eos");
        a.EnsureAllUsed();
        if (grammar)
        {
            var report = GrammarBench.Run(new GrammarBench.Settings(model, dummy,
                schemaFile is null ? GrammarBench.DefaultSchema : File.ReadAllText(schemaFile), sequences, decode, threads, device));
            Console.WriteLine(report);
            if (outPath is not null) File.WriteAllText(outPath, report);
            return 0;
        }
        if (prefixCache)
        {
            var report = new StringBuilder();
            foreach (var dtype in a.Has("dtypes") ? dtypes : ["float32"])
            {
                var options = new EngineOptions { ModelPath = model, Dtype = dtype, Device = device, DummyWeights = dummy, Threads = threads, KvCacheBytes = 4L << 30 };
                if (maxTokensPerStep is { } m) options = options with { MaxTokensPerStep = m };
                using var engine = EngineCli.Load(options);
                report.AppendLine(PrefixCacheBench.Run(engine, new PrefixCacheBench.Settings(prefixTokens, suffixTokens, repeats)));
            }
            Console.WriteLine(report.ToString());
            if (outPath is not null) File.WriteAllText(outPath, report.ToString());
            return 0;
        }
        if (streams is not null)
        {
            if (streams.Any(n => n < 1)) throw new CliException("option --streams: every count must be >= 1");
            var report = new StringBuilder();
            // Without --dtypes, float32: the dtype whose many-stream figures docs/performance.md compares.
            foreach (var dtype in a.Has("dtypes") ? dtypes : ["float32"])
            {
                var options = new EngineOptions
                {
                    ModelPath = model, Dtype = dtype, Device = device, DummyWeights = dummy, Threads = threads,
                    KvCacheBytes = 4L << 30, MaxBatchSequences = Math.Max(streams.Max(), 1),
                };
                if (maxTokensPerStep is { } m) options = options with { MaxTokensPerStep = m };
                using var engine = EngineCli.Load(options);
                var settings = new StreamsBench.Settings(streams, promptTokens, outputTokens, rounds);
                report.AppendLine(profile ? StreamsBench.Profile(engine, settings) : StreamsBench.Run(engine, settings));
            }
            Console.WriteLine(report.ToString());
            if (outPath is not null) File.WriteAllText(outPath, report.ToString());
            return 0;
        }

        double bandwidth = MeasureReadBandwidth(repeats: 7);
        Console.Error.WriteLine($"memory read bandwidth: {bandwidth / 1e9:F1} GB/s ({Environment.ProcessorCount} threads, median of 7)");
        var md = new StringBuilder();
        md.AppendLine($"Model: `{model}`{(dummy ? " (random weights)" : "")}, device {device}, {Environment.ProcessorCount} cores, " +
                      $"CPU kernel vectors {ActorQuery.Inference.Model.DeviceAndDtype.CpuKernelVectors}, read bandwidth {bandwidth / 1e9:F1} GB/s; medians of {repeats}.");
        md.AppendLine();
        md.Append("| dtype | load s | prefill tok/s (").Append(prefill).Append(")");
        foreach (var p in prompts) md.Append(" | decode tok/s (prompt ").Append(p).Append(')');
        md.AppendLine(" | weight MB/token | bandwidth bound tok/s | decode ÷ bound |");
        md.Append("|---|---|---");
        foreach (var _ in prompts) md.Append("|---");
        md.AppendLine("|---|---|---|");

        foreach (var dtype in dtypes)
        {
            var sw = Stopwatch.StartNew();
            using var engine = EngineCli.Load(new EngineOptions
            {
                ModelPath = model, Dtype = dtype, Device = device, DummyWeights = dummy, Threads = threads,
                KvCacheBytes = 4L << 30,
            });
            double load = sw.Elapsed.TotalSeconds;
            var rng = new Random(1);
            int[] Prompt(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(engine.Model.VocabSize)).ToArray();
            long id = 0;

            // Prefill: the steps of a fresh sequence up to its first token (the prompt, in chunks if it is long).
            Run(engine, ++id, Prompt(prefill), 1, out _); // warm-up
            var prefillRates = Enumerable.Range(0, repeats).Select(r =>
            {
                Run(engine, ++id, Prompt(prefill), 1, out var toFirstToken);
                return prefill / toFirstToken;
            }).ToList();

            var decodeRates = new List<double>();
            foreach (var p in prompts)
            {
                var rates = Enumerable.Range(0, repeats).Select(r =>
                {
                    var t = Run(engine, ++id, Prompt(p), decode, out _);
                    return (decode - 1) / t.Skip(1).Sum(); // steps after the one that gave the first token
                }).ToList();
                decodeRates.Add(Median(rates));
            }
            long bytesPerToken = engine.MemoryUsage.WeightBytes;
            double bound = bandwidth / bytesPerToken;
            md.Append($"| {engine.Model.Dtype} | {load:F1} | {Median(prefillRates):F0}");
            foreach (var r in decodeRates) md.Append($" | {r:F1}");
            md.AppendLine($" | {bytesPerToken / 1e6:F0} | {bound:F1} | {decodeRates[0] / bound:P0} |");
            Console.Error.WriteLine($"{dtype}: done");
        }
        Console.WriteLine(md.ToString());
        if (outPath is not null) File.WriteAllText(outPath, md.ToString());
        return 0;
    }

    /// <summary>Runs one sequence to <paramref name="tokens"/> new tokens; returns the seconds of each step that
    /// produced a token, the first one including every prefill step before it.</summary>
    internal static List<double> Run(InferenceEngine engine, long id, int[] prompt, int tokens, out double toFirstToken) =>
        Run(engine, id, prompt, new SamplingParams { MaxNewTokens = tokens, IgnoreEos = true }, out toFirstToken);

    internal static List<double> Run(InferenceEngine engine, long id, int[] prompt, SamplingParams sampling, out double toFirstToken)
    {
        var added = engine.TryAdd(new GenerationRequest(id, prompt, sampling));
        if (!added.Added) throw new CliException(added.Reason ?? "not added");
        var times = new List<double>();
        var sw = Stopwatch.StartNew();
        while (engine.HasPendingWork)
        {
            if (engine.Step().Updates.Count == 0) continue; // a prefill chunk: no token yet
            times.Add(sw.Elapsed.TotalSeconds);
            sw.Restart();
        }
        toFirstToken = times[0];
        return times;
    }

    internal static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    /// <summary>
    /// Read bandwidth with every core summing its own part of a 1 GiB buffer with SIMD vectors (a scalar
    /// loop is compute-bound and reports far less than the memory system delivers).
    /// </summary>
    public static double MeasureReadBandwidth(int repeats)
    {
        const long bytes = 1L << 30;
        var data = GC.AllocateUninitializedArray<float>((int)(bytes / sizeof(float)));
        Array.Fill(data, 1f);
        int workers = Environment.ProcessorCount;
        var rates = new List<double>();
        float sink = 0;
        for (int r = 0; r < repeats; r++)
        {
            var partial = new float[workers];
            var sw = Stopwatch.StartNew();
            Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
            {
                int chunk = data.Length / workers;
                var span = MemoryMarshal.Cast<float, Vector<float>>(data.AsSpan(w * chunk, chunk));
                Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
                int i = 0;
                for (; i + 3 < span.Length; i += 4) { a0 += span[i]; a1 += span[i + 1]; a2 += span[i + 2]; a3 += span[i + 3]; }
                for (; i < span.Length; i++) a0 += span[i];
                partial[w] = Vector.Sum(a0 + a1 + a2 + a3);
            });
            rates.Add(bytes / sw.Elapsed.TotalSeconds);
            sink += partial.Sum();
        }
        if (sink == 42) Console.Error.Write(""); // keeps the sums observable
        return Median(rates);
    }
}
