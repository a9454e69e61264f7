using ActorQuery.Inference.Model;
using System.Diagnostics;
using System.Text;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ActorQuery.Bench;

/// <summary>
/// <c>bench --streams 1,4,16</c>: the engine alone (no actors, no HTTP) serving N concurrent streams in a closed
/// loop, as the HTTP load benchmark does through the server: N requests of fixed prompt and output length
/// (ignore_eos) arrive together, each finished one is replaced at once until <c>--rounds</c> × N have run.
/// Prints aggregate output tokens/s (and its ratio to one stream), step latency, inter-token latency (gaps
/// between a stream's consecutive tokens) and time to first token. One process, one model: compare ratios.
/// </summary>
internal static class StreamsBench
{
    public sealed record Settings(IReadOnlyList<int> Streams, int PromptTokens, int OutputTokens, int Rounds);

    public static string Run(InferenceEngine engine, Settings s)
    {
        var rng = new Random(1);
        long id = 0;
        int[] Prompt() => Enumerable.Range(0, s.PromptTokens).Select(_ => rng.Next(engine.Model.VocabSize)).ToArray();
        Serve(engine, 2, 2, Prompt, ref id, s.OutputTokens / 8 + 2);          // warm-up: JIT, allocator, pool pages
        var md = new StringBuilder();
        md.AppendLine($"Engine only, {engine.Model.Dtype}, prompt {s.PromptTokens} / output {s.OutputTokens} tokens (ignore_eos), " +
                      $"{s.Rounds} rounds per stream, max {engine.MaxTokensPerStep} tokens per step, KV blocks of {engine.KvBlockSize}.");
        md.AppendLine();
        md.AppendLine("| streams | requests | output tok/s | × 1 stream | decode-only tok/s | tok per CPU s | × 1 stream | step ms p50 | step ms p99 | ITL ms p50 | ITL ms p99 | ITL p99 ÷ p50 | TTFT ms p50 | TTFT ms p99 | preempted |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        double? single = null, singleCpu = null;
        foreach (var n in s.Streams)
        {
            var r = Serve(engine, n, n * s.Rounds, Prompt, ref id, s.OutputTokens);
            double rate = r.OutputTokens / r.Seconds;
            double cpuRate = r.OutputTokens / r.CpuSeconds;
            if (n == 1) (single, singleCpu) = (rate, cpuRate);
            double itl50 = Pct(r.Gaps, 50), itl99 = Pct(r.Gaps, 99);
            double decodeRate = r.DecodeSeconds > 0 ? r.DecodeTokens / r.DecodeSeconds : 0;
            md.AppendLine($"| {n} | {n * s.Rounds} | {rate:F1} | {(single is { } one ? $"{rate / one:F1}×" : "–")} | {decodeRate:F1} | " +
                          $"{cpuRate:F1} | {(singleCpu is { } oneCpu ? $"{cpuRate / oneCpu:F1}×" : "–")} | " +
                          $"{Pct(r.Steps, 50) * 1e3:F0} | {Pct(r.Steps, 99) * 1e3:F0} | {itl50 * 1e3:F0} | {itl99 * 1e3:F0} | {itl99 / itl50:F2} | " +
                          $"{Pct(r.FirstTokens, 50) * 1e3:F0} | {Pct(r.FirstTokens, 99) * 1e3:F0} | {r.Preempted} |");
            Console.Error.WriteLine($"{n} streams: {rate:F1} tok/s, decode only {decodeRate:F1} tok/s, ITL p50 {itl50 * 1e3:F0} ms p99 {itl99 * 1e3:F0} ms");
        }
        return md.ToString();
    }

    /// <param name="CpuSeconds">Processor time of the whole process while serving: on a machine shared with other
    /// busy processes, tokens per CPU second show what batching buys even when the wall clock is mostly waiting.</param>
    /// <param name="DecodeTokens">Tokens of the decode-only steps: steps in which every sequence in flight made its next
    /// token and none prefilled (llama.cpp's batched figure is of such steps only, its prompts fed before its clock).</param>
    /// <param name="DecodeSeconds">Wall time of those steps.</param>
    private sealed record Result(long OutputTokens, double Seconds, double CpuSeconds, List<double> Steps, List<double> Gaps, List<double> FirstTokens, int Preempted,
        long DecodeTokens, double DecodeSeconds);

    /// <summary>Keeps <paramref name="streams"/> requests in the engine until <paramref name="total"/> have finished.</summary>
    private static Result Serve(InferenceEngine engine, int streams, int total, Func<int[]> prompt, ref long id, int outputTokens)
    {
        var p = new SamplingParams { MaxNewTokens = outputTokens, IgnoreEos = true };
        var lastToken = new Dictionary<long, double>();     // sequence → time of its last token (or of its arrival)
        var started = new HashSet<long>();
        var steps = new List<double>();
        var gaps = new List<double>();
        var firsts = new List<double>();
        int submitted = 0, finished = 0, preempted = 0;
        long tokens = 0, decodeTokens = 0;
        double decodeSeconds = 0;
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        while (finished < total)
        {
            while (submitted < total && submitted - finished < streams)
            {
                var added = engine.TryAdd(new GenerationRequest(++id, prompt(), p));
                if (!added.Added) throw new CliException($"stream not added: {added.Reason}");
                lastToken[id] = clock.Elapsed.TotalSeconds;
                submitted++;
            }
            int inFlight = submitted - finished;
            double t0 = clock.Elapsed.TotalSeconds;
            var step = engine.Step();
            double t1 = clock.Elapsed.TotalSeconds;
            steps.Add(t1 - t0);
            preempted += step.Preempted;
            if (step.Updates.Count == inFlight && step.Updates.All(u => started.Contains(u.SequenceId)))
            {
                decodeTokens += inFlight;
                decodeSeconds += t1 - t0;
            }
            foreach (var u in step.Updates)
            {
                tokens++;
                (started.Add(u.SequenceId) ? firsts : gaps).Add(t1 - lastToken[u.SequenceId]);
                lastToken[u.SequenceId] = t1;
                if (u.Finished is not null) { finished++; lastToken.Remove(u.SequenceId); started.Remove(u.SequenceId); }
            }
        }
        process.Refresh();
        return new Result(tokens, clock.Elapsed.TotalSeconds, (process.TotalProcessorTime - cpu0).TotalSeconds, steps, gaps, firsts, preempted,
            decodeTokens, decodeSeconds);
    }

    /// <summary>
    /// Where a decode step's time goes at each stream count: the engine's step (n sequences decoding, prompt
    /// already cached) against the same model's projections alone (random matrices of the checkpoint's shapes,
    /// [n, in] × [in, out] for every layer and the LM head, multiplied as the engine multiplies them: the small-batch
    /// kernel or libtorch). The rest is attention, norms, rotary, sampling and
    /// per-op overhead. Process CPU time, medians of 5, so that other busy processes matter less.
    /// </summary>
    public static string Profile(InferenceEngine engine, Settings s)
    {
        var c = engine.Config;
        var (dtype, matrixDtype) = engine.Runner.Dtypes;
        long q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.NumKeyValueHeads * c.HeadDim;
        (long In, long Out)[] perLayer = [(c.HiddenSize, q + 2 * kv), (q, c.HiddenSize), (c.HiddenSize, 2L * c.IntermediateSize), (c.IntermediateSize, c.HiddenSize)];
        var md = new StringBuilder();
        md.AppendLine("| streams | step CPU ms | projections CPU ms | rest CPU ms | rest per stream ms |");
        md.AppendLine("|---|---|---|---|---|");
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            Tensor Matrix(long rows, long columns) =>
                matrixDtype == ScalarType.Int8 ? Int8Matrix.Quantize(randn(rows, columns)) : randn(rows, columns, dtype: matrixDtype);
            var weights = perLayer.Select(d => Matrix(d.Out, d.In)).ToArray();
            var head = Matrix(c.VocabSize, c.HiddenSize);
            var rng = new Random(2);
            long id = 1_000_000;
            foreach (var n in s.Streams)
            {
                // Long enough for the measured steps, within the model's context (a small model's is 512).
                var p = new SamplingParams { MaxNewTokens = Math.Clamp(c.MaxPositionEmbeddings - s.PromptTokens, 1, 1000), IgnoreEos = true };
                for (int i = 0; i < n; i++)
                {
                    var added = engine.TryAdd(new GenerationRequest(++id, Enumerable.Range(0, s.PromptTokens).Select(_ => rng.Next(c.VocabSize)).ToArray(), p));
                    if (!added.Added) throw new CliException($"stream not added: {added.Reason}");
                }
                while (engine.Step().Updates.Count < n) { }          // prefill done: every step is n decode tokens
                var step = CpuMedian(() => engine.Step());
                var xs = perLayer.Select(d => randn(n, d.In, dtype: dtype)).ToArray();
                var xh = randn(n, c.HiddenSize, dtype: dtype);
                var proj = CpuMedian(() =>
                {
                    using var inner = NewDisposeScope();
                    for (int l = 0; l < c.NumHiddenLayers; l++)
                        for (int k = 0; k < weights.Length; k++) engine.Runner.Project(xs[k], weights[k]);
                    engine.Runner.Project(xh, head);
                });
                for (long i = id - n + 1; i <= id; i++) engine.Remove(i);
                md.AppendLine($"| {n} | {step * 1e3:F0} | {proj * 1e3:F0} | {(step - proj) * 1e3:F0} | {(step - proj) / n * 1e3:F1} |");
                Console.Error.WriteLine($"profile {n}: step {step * 1e3:F0} ms, projections {proj * 1e3:F0} ms");
            }
        }
        return md.ToString();
    }

    private static double CpuMedian(Action action)
    {
        var process = Process.GetCurrentProcess();
        var times = new List<double>();
        for (int i = 0; i < 5; i++)
        {
            process.Refresh();
            var t0 = process.TotalProcessorTime;
            action();
            process.Refresh();
            times.Add((process.TotalProcessorTime - t0).TotalSeconds);
        }
        return Pct(times, 50);
    }

    /// <summary>The same percentile as the HTTP benchmark's (linear interpolation), so the two reports agree.</summary>
    private static double Pct(List<double> xs, double pct) => Load.LatencyStats.Percentile(xs, pct);
}
