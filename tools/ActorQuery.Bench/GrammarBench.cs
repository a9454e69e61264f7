using System.Diagnostics;
using System.Text;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization;
using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Bench;

/// <summary>
/// <c>engine --grammar</c>: what constrained decoding costs per sequence per step on a real vocabulary (by default
/// the Qwen2.5-0.5B shape's, 151k tokens), next to that model's decode step at one stream. The mask is timed on its
/// own over many sequences that draw uniformly among the allowed tokens (a model that knows nothing: the widest
/// spread of states): the first sequences meet every state for the first time (a trie walk each), later ones
/// mostly reuse the states' cached masks. Then one stream decodes through the engine with and without the schema.
/// </summary>
internal static class GrammarBench
{
    /// <summary>A typical structured-output schema: a string, bounded integers, an enum, an array of strings.</summary>
    public const string DefaultSchema = """
        {"type":"object","properties":{
          "name":{"type":"string","maxLength":24},
          "age":{"type":"integer","minimum":0,"maximum":150},
          "role":{"enum":["admin","user","guest"]},
          "tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":3},
          "active":{"type":"boolean"}},
         "required":["name","age","role","tags","active"],"additionalProperties":false}
        """;

    public sealed record Settings(string Model, bool Dummy, string Schema, int Sequences, int DecodeTokens, int Threads, string Device);

    public static string Run(Settings s)
    {
        var tokenizer = EngineCli.LoadTokenizer(s.Model);
        var sw = Stopwatch.StartNew();
        var vocabulary = tokenizer.GrammarVocabulary;
        double trieSeconds = sw.Elapsed.TotalSeconds;
        var constraint = new OutputConstraint(ConstraintKind.JsonSchema, s.Schema);
        sw.Restart();
        var automaton = GrammarCompiler.Compile(constraint);
        double compileMs = sw.Elapsed.TotalMilliseconds;
        int vocab = ActorQuery.Inference.Checkpoint.ModelConfig.Load(Path.Combine(s.Model, "config.json")).VocabSize;
        int[] ends = [.. tokenizer.EndOfTurnTokenIds];

        // The mask alone: per step, MaskLogits over a vocabulary-sized row, then the chosen token's advance.
        var cold = new List<double>();
        var warm = new List<double>();
        var logits = new float[vocab];
        var rng = new Random(1);
        int steps = 0, unfinished = 0;
        for (int seq = 0; seq < s.Sequences; seq++)
        {
            var m = new GrammarMatcher(automaton, vocabulary, ends);
            var times = seq < s.Sequences / 2 ? cold : warm;
            for (int step = 0; ; step++)
            {
                if (m.IsComplete && !m.State.CanContinue) break;
                if (step == 256) { unfinished++; break; }
                Array.Clear(logits);
                var t0 = Stopwatch.GetTimestamp();
                m.MaskLogits(logits);
                int token = Pick(logits, rng);
                if (!m.Accept(token)) throw new InvalidOperationException("the bench drew a masked token");
                times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                steps++;
                if (m.Ended) break;
            }
        }

        // One walk from inside an unbounded string (nearly every token continues it): the walk's own cost, first with
        // the state's transitions still to compute, then with them known and only the mask dropped.
        var stringAutomaton = GrammarCompiler.Compile(new OutputConstraint(ConstraintKind.JsonSchema, "{\"type\":\"string\"}"));
        var inString = stringAutomaton.Step(stringAutomaton.Start, (byte)'"');
        var t1 = Stopwatch.GetTimestamp();
        vocabulary.Mask(stringAutomaton, inString);
        double walkCold = Stopwatch.GetElapsedTime(t1).TotalMilliseconds;
        var walkWarm = new List<double>();
        for (int r = 0; r < 5; r++)
        {
            inString.ForgetMask();
            t1 = Stopwatch.GetTimestamp();
            vocabulary.Mask(stringAutomaton, inString);
            walkWarm.Add(Stopwatch.GetElapsedTime(t1).TotalMilliseconds);
        }

        // Through the sampler at temperature 1 on random logits (a model that knows nothing): what a constrained step
        // adds to an unconstrained one. Greedy and plain temperature mask only when the drawn token is refused.
        var viaSampler = new List<double>();
        var plainSampler = new List<double>();
        var noise = new Random(2);
        var row = new float[vocab];
        int samplerSteps = 0;
        for (int seq = 0; seq < s.Sequences; seq++)
        {
            var sampling = new SamplingParams { Temperature = 1f, Seed = seq, MaxNewTokens = 256 };
            var sampler = new ActorQuery.Inference.Sampling.Sampler(sampling, [], null, new GrammarMatcher(automaton, vocabulary, ends));
            var unconstrained = new ActorQuery.Inference.Sampling.Sampler(sampling, []);
            for (int step = 0; step < 256; step++)
            {
                var m = sampler.Constraint!;
                if (m.Ended || (m.IsComplete && !m.State.CanContinue)) break;
                for (int i = 0; i < row.Length; i++) row[i] = (float)(noise.NextDouble() * 4 - 2);
                var copy = (float[])row.Clone();
                var t0 = Stopwatch.GetTimestamp();
                sampler.Sample(row, out _);
                viaSampler.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                t0 = Stopwatch.GetTimestamp();
                unconstrained.Sample(copy, out _);
                plainSampler.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                samplerSteps++;
            }
        }

        // The engine: one stream, unconstrained and constrained, per decode step.
        using var engine = EngineCli.Load(new EngineOptions
        {
            ModelPath = s.Model, DummyWeights = s.Dummy, Dtype = "float32", Device = s.Device, Threads = s.Threads,
            KvCacheBytes = 256L << 20, Tokenizer = tokenizer,
        });
        var prompt = tokenizer.Encode("Describe a user as JSON:").ToArray();
        double plain = DecodeStepMs(engine, 1, prompt, new SamplingParams { MaxNewTokens = s.DecodeTokens, IgnoreEos = true });
        double constrained = DecodeStepMs(engine, 2, prompt,
            new SamplingParams { MaxNewTokens = s.DecodeTokens, Temperature = 1, Seed = 3, Constraint = constraint });

        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() : null;
        var md = new StringBuilder();
        md.AppendLine($"Vocabulary: `{s.Model}` ({vocabulary.Size} tokens, trie of {vocabulary.NodeCount} nodes built in {trieSeconds:F2} s); " +
                      $"schema compiled in {compileMs:F1} ms; {cpu ?? "unknown CPU"}, {Environment.ProcessorCount} cores.");
        md.AppendLine();
        md.AppendLine("| per sequence per step | mean ms | p50 ms | p99 ms | max ms | steps |");
        md.AppendLine("|---|---|---|---|---|---|");
        md.AppendLine(Row($"mask every step, first {s.Sequences / 2} sequences (states met for the first time)", cold));
        md.AppendLine(Row($"mask every step, next {s.Sequences - s.Sequences / 2} sequences (states mostly cached)", warm));
        md.AppendLine(Row($"sampler at temperature 1 on random logits, constrained (masks only when the draw is refused)", viaSampler));
        md.AppendLine(Row($"sampler at temperature 1 on random logits, unconstrained", plainSampler));
        md.AppendLine();
        md.AppendLine($"{automaton.StateCount} automaton states after {steps} steps; {unfinished} of {s.Sequences} sequences still open after 256 tokens. " +
                      $"One trie walk inside an unbounded string (every node visited): {walkCold:F1} ms with its transitions still to compute, " +
                      $"{BenchCommand.Median(walkWarm):F1} ms with them known (median of 5).");
        md.AppendLine();
        md.AppendLine("| one stream, decode step | ms |");
        md.AppendLine("|---|---|");
        md.AppendLine($"| unconstrained (`{s.Model}`{(s.Dummy ? ", random weights" : "")}, float32, {s.Device}) | {plain:F1} |");
        md.AppendLine($"| with the schema (the mask included) | {constrained:F1} |");
        var all = cold.Concat(warm).ToList();
        md.AppendLine();
        md.AppendLine($"Mask mean over all steps: {all.Average():F2} ms = {all.Average() / plain:P1} of an unconstrained decode step; " +
                      $"the sampler's constrained step adds {viaSampler.Average() - plainSampler.Average():F2} ms on average " +
                      $"({(viaSampler.Average() - plainSampler.Average()) / plain:P1}).");
        return md.ToString();
    }

    private static string Row(string label, List<double> xs)
    {
        if (xs.Count == 0) return $"| {label} | – | – | – | – | 0 |";
        var sorted = xs.Order().ToList();
        return $"| {label} | {xs.Average():F2} | {sorted[sorted.Count / 2]:F2} | {sorted[(int)(sorted.Count * 0.99)]:F2} | {sorted[^1]:F2} | {xs.Count} |";
    }

    /// <summary>Uniform among the allowed tokens (end tokens included where the output may end).</summary>
    private static int Pick(float[] logits, Random rng)
    {
        var allowed = new List<int>();
        for (int i = 0; i < logits.Length; i++) if (!float.IsNegativeInfinity(logits[i])) allowed.Add(i);
        return allowed[rng.Next(allowed.Count)];
    }

    /// <summary>Mean milliseconds of the decode steps after the first token of one sequence.</summary>
    private static double DecodeStepMs(InferenceEngine engine, long id, int[] prompt, SamplingParams p)
    {
        var times = BenchCommand.Run(engine, id, prompt, p, out _);
        return times.Count > 1 ? times.Skip(1).Average() * 1000 : double.NaN;
    }
}
