using ActorQuery.Contracts;
using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Memory;
using ActorQuery.Inference.Model;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Tests;

/// <summary>The engine's step loop as a caller (the ModelActor) meets it: adding sequences, stop rules, sampling, memory.</summary>
[Collection(TorchGlobalState.Name)]
public class EngineTests
{
    private static InferenceEngine Load(string model = "qwen2-tiny-f32", long kvBytes = 1L << 30, string dtype = "float32", int maxTokensPerStep = 64,
                                        int prefillPerDecodeToken = 0) =>
        InferenceEngine.Load(new EngineOptions
        {
            ModelPath = Fixtures.Dir(model), Dtype = dtype, Device = "cpu", KvCacheBytes = kvBytes, MaxTokensPerStep = maxTokensPerStep,
            PrefillPerDecodeToken = prefillPerDecodeToken,
        });

    private static readonly int[] Prompt = [296, 330, 186, 81, 236, 121, 267]; // inside every fixture vocabulary (384+)

    /// <summary>Runs until every sequence finished; returns each sequence's tokens and finish reason.</summary>
    private static Dictionary<long, (List<int> Tokens, FinishReason? Finish)> Drain(IGenerationEngine e)
    {
        var result = new Dictionary<long, (List<int>, FinishReason?)>();
        int guard = 0;
        while (e.HasPendingWork && guard++ < 10_000)
            foreach (var u in e.Step().Updates)
            {
                if (!result.TryGetValue(u.SequenceId, out var r)) result[u.SequenceId] = r = (new List<int>(), null);
                r.Item1.Add(u.TokenId);
                result[u.SequenceId] = (r.Item1, u.Finished);
            }
        return result;
    }

    [Fact]
    public void Prompt_plus_max_tokens_over_the_context_is_refused_as_too_large_naming_the_context()
    {
        using var e = Load();
        var r = e.TryAdd(new GenerationRequest(1, Prompt, SamplingParams.Greedy(5000)));
        Assert.Equal(AddOutcome.TooLarge, r.Outcome);
        Assert.Contains("context of 4096 tokens", r.Reason);
    }

    [Fact]
    public void Invalid_requests_throw_argument_errors_naming_the_field()
    {
        using var e = Load();
        Assert.Equal("prompt", Assert.Throws<ArgumentException>(() => e.TryAdd(new GenerationRequest(1, [], SamplingParams.Greedy(4)))).ParamName);
        Assert.Equal("prompt", Assert.Throws<ArgumentException>(() => e.TryAdd(new GenerationRequest(1, [9999], SamplingParams.Greedy(4)))).ParamName);
        Assert.Equal("top_p", Assert.Throws<ArgumentException>(() => e.TryAdd(new GenerationRequest(1, Prompt, new SamplingParams { TopP = 1.5f }))).ParamName);
        Assert.Equal("temperature", Assert.Throws<ArgumentException>(() => e.TryAdd(new GenerationRequest(1, Prompt, new SamplingParams { Temperature = -1 }))).ParamName);
        Assert.Equal((0, 0), (e.RunningSequences, e.WaitingSequences));
    }

    [Fact]
    public void Sequences_join_and_leave_between_steps_and_each_gets_its_own_greedy_answer()
    {
        using var e = Load(maxTokensPerStep: 512);                    // both joiners' prompts fit one step
        var cases = Fixtures.Cases("qwen2-tiny-f32");
        var p = SamplingParams.Greedy(24) with { IgnoreEos = true };
        e.TryAdd(new GenerationRequest(0, cases[0].InputIds, p));
        e.Step(); e.Step();
        e.TryAdd(new GenerationRequest(1, cases[1].InputIds, p));   // joins mid-flight
        e.TryAdd(new GenerationRequest(2, cases[2].InputIds, p));
        var first = e.Step().Updates.ToDictionary(u => u.SequenceId, u => u.TokenId);
        Assert.Equal(3, first.Count);
        Assert.True(e.Remove(2));                                     // leaves (cancelled)
        var rest = Drain(e);
        Assert.DoesNotContain(2L, rest.Keys);
        Assert.Equal(cases[1].GreedyIds, new[] { first[1] }.Concat(rest[1].Tokens));
        Assert.Equal(cases[0].GreedyIds.Skip(3), rest[0].Tokens);
    }

    [Fact]
    public void With_the_prefill_cap_a_prompt_joining_a_decoding_stream_prefills_in_half_budget_chunks_and_the_stream_keeps_its_greedy_answer()
    {
        using var e = Load(prefillPerDecodeToken: 2);                 // 2 prefill tokens per decode token, at least 32
        var cases = Fixtures.Cases("qwen2-tiny-f32");
        var longPrompt = Enumerable.Repeat(cases[1].InputIds, 16).SelectMany(x => x).ToArray();
        Assert.True(longPrompt.Length > 64, $"the prompt ({longPrompt.Length} tokens) must need more than one full budget");
        var stream = new List<int>();
        void Collect(StepResult r) => stream.AddRange(r.Updates.Where(u => u.SequenceId == 0).Select(u => u.TokenId));
        e.TryAdd(new GenerationRequest(0, cases[0].InputIds, SamplingParams.Greedy(24) with { IgnoreEos = true }));
        Collect(e.Step());                                            // case 0 decodes from now on
        e.TryAdd(new GenerationRequest(1, longPrompt, SamplingParams.Greedy(1)));
        int steps = 0;
        for (bool prefilled = false; !prefilled; steps++)
        {
            var r = e.Step();
            Collect(r);
            prefilled = r.Updates.Any(u => u.SequenceId == 1);
        }
        // Alone the prompt would take ceil(n / 64) steps; beside one stream it takes 32 tokens a step.
        Assert.Equal((longPrompt.Length + Scheduler.MinPrefillChunk - 1) / Scheduler.MinPrefillChunk, steps);
        while (e.HasPendingWork) Collect(e.Step());
        Assert.Equal(cases[0].GreedyIds.Take(24), stream);
    }

    [Fact]
    public void Eos_stops_with_reason_stop_unless_ignored_and_min_tokens_defers_it()
    {
        using var e = Load();
        // Greedy ids of case 0 are 301 ×6, 150, ...: make 150 a stop token.
        var c = Fixtures.Cases("qwen2-tiny-f32")[0];
        e.TryAdd(new GenerationRequest(1, c.InputIds, SamplingParams.Greedy(24) with { StopTokenIds = [150] }));
        var r = Drain(e)[1];
        Assert.Equal(FinishReason.Stop, r.Finish);
        Assert.Equal(c.GreedyIds.Take(7), r.Tokens);                 // the stop token is the last one reported

        e.TryAdd(new GenerationRequest(2, c.InputIds, SamplingParams.Greedy(24) with { StopTokenIds = [301], MinNewTokens = 3 }));
        var m = Drain(e)[2];
        Assert.Equal(3, m.Tokens.Count);                              // 301 from the start, honoured from the 3rd token
        Assert.Equal(FinishReason.Stop, m.Finish);

        e.TryAdd(new GenerationRequest(3, c.InputIds, SamplingParams.Greedy(10) with { StopTokenIds = [] }));
        Assert.Equal(FinishReason.Length, Drain(e)[3].Finish);
    }

    [Fact]
    public void Same_seed_gives_the_same_tokens_and_other_seeds_differ()
    {
        using var e = Load();
        var p = new SamplingParams { Temperature = 1.5f, TopP = 0.95f, TopK = 50, MaxNewTokens = 20, IgnoreEos = true };
        List<int> Run(long id, long seed)
        {
            e.TryAdd(new GenerationRequest(id, Prompt, p with { Seed = seed }));
            return Drain(e)[id].Tokens;
        }
        var a = Run(1, 7);
        Assert.Equal(a, Run(2, 7));
        Assert.NotEqual(a, Run(3, 8));
    }

    [Fact]
    public void Top_k_one_and_tiny_top_p_are_greedy_whatever_the_temperature()
    {
        using var e = Load();
        var c = Fixtures.Cases("qwen2-tiny-f32")[1];
        e.TryAdd(new GenerationRequest(1, c.InputIds, new SamplingParams { Temperature = 2f, TopK = 1, MaxNewTokens = 24, IgnoreEos = true, Seed = 1 }));
        e.TryAdd(new GenerationRequest(2, c.InputIds, new SamplingParams { Temperature = 2f, TopP = 1e-6f, MaxNewTokens = 24, IgnoreEos = true, Seed = 2 }));
        e.TryAdd(new GenerationRequest(3, c.InputIds, new SamplingParams { Temperature = 2f, MinP = 1f, MaxNewTokens = 24, IgnoreEos = true, Seed = 3 }));
        var r = Drain(e);
        Assert.Equal(c.GreedyIds, r[1].Tokens);
        Assert.Equal(c.GreedyIds, r[2].Tokens);
        Assert.Equal(c.GreedyIds, r[3].Tokens);
    }

    [Fact]
    public void Penalties_break_the_greedy_repetition()
    {
        using var e = Load();
        var c = Fixtures.Cases("qwen2-tiny-f32")[0];                 // greedy repeats 301 six times
        e.TryAdd(new GenerationRequest(1, c.InputIds, SamplingParams.Greedy(6) with { IgnoreEos = true, RepetitionPenalty = 10f }));
        e.TryAdd(new GenerationRequest(2, c.InputIds, SamplingParams.Greedy(6) with { IgnoreEos = true, FrequencyPenalty = 2f }));
        e.TryAdd(new GenerationRequest(3, c.InputIds, SamplingParams.Greedy(6) with { IgnoreEos = true, PresencePenalty = 2f }));
        var r = Drain(e);
        foreach (var id in new long[] { 1, 2, 3 })
            Assert.True(r[id].Tokens.Distinct().Count() > 1, $"sequence {id}: {string.Join(",", r[id].Tokens)}");
    }

    [Fact]
    public void Logit_bias_of_minus_100_bans_the_greedy_token_and_100_forces_another()
    {
        using var e = Load();
        var c = Fixtures.Cases("qwen2-tiny-f32")[0];                 // greedy repeats 301 six times
        var greedy = SamplingParams.Greedy(6) with { IgnoreEos = true, Logprobs = true };
        e.TryAdd(new GenerationRequest(1, c.InputIds, greedy));
        e.TryAdd(new GenerationRequest(2, c.InputIds, greedy with { LogitBias = new Dictionary<int, float> { [301] = -100f } }));
        e.TryAdd(new GenerationRequest(3, c.InputIds, greedy with { LogitBias = new Dictionary<int, float> { [42] = 100f } }));
        var r = Drain(e);
        Assert.Equal(Enumerable.Repeat(301, 6), r[1].Tokens);
        Assert.DoesNotContain(301, r[2].Tokens);
        Assert.Equal(Enumerable.Repeat(42, 6), r[3].Tokens);
    }

    [Fact]
    public void Logit_bias_out_of_range_is_refused_naming_logit_bias()
    {
        using var e = Load();
        var bad = SamplingParams.Greedy(4) with { LogitBias = new Dictionary<int, float> { [5] = 100.5f } };
        Assert.Equal("logit_bias", Assert.Throws<ArgumentException>(() => e.TryAdd(new GenerationRequest(1, Prompt, bad))).ParamName);
    }

    [Fact]
    public void Logprobs_report_the_chosen_token_and_sorted_alternatives()
    {
        using var e = Load();
        e.TryAdd(new GenerationRequest(1, Prompt, SamplingParams.Greedy(3) with { Logprobs = true, TopLogprobs = 5, IgnoreEos = true }));
        var u = e.Step().Updates.Single();
        Assert.NotNull(u.Logprob);
        Assert.Equal(u.TokenId, u.Logprob!.TokenId);
        Assert.Equal(5, u.Logprob.Top.Count);
        Assert.Equal(u.TokenId, u.Logprob.Top[0].TokenId);          // greedy: the chosen token is the most likely
        Assert.Equal(u.Logprob.Logprob, u.Logprob.Top[0].Logprob);
        Assert.True(u.Logprob.Top.Zip(u.Logprob.Top.Skip(1)).All(p => p.First.Logprob >= p.Second.Logprob));
        Assert.True(u.Logprob.Logprob < 0);
    }

    [Fact]
    public void Bfloat16_keeps_bf16_weights_and_where_the_cpu_lacks_bf16_arithmetic_computes_as_float32()
    {
        using var f32 = Load("qwen2-tiny-bf16");
        using var bf16 = Load("qwen2-tiny-bf16", dtype: "bfloat16");
        Assert.Equal("bfloat16", bf16.Model.Dtype);
        Assert.Equal(ScalarType.BFloat16, bf16.Runner.Dtypes.Matrices);
        var ids = Fixtures.Cases("qwen2-tiny-bf16")[1].InputIds;
        var a = f32.ScoreAllPositions(ids);
        var b = bf16.ScoreAllPositions(ids);
        double max = 0;
        for (int t = 0; t < a.GetLength(0); t++)
            for (int v = 0; v < a.GetLength(1); v++)
                max = Math.Max(max, Math.Abs(a[t, v] - b[t, v]));
        if (bf16.Runner.Dtypes.Compute == ScalarType.Float32)
        {
            // bf16 matrices, float32 arithmetic (this CPU has no bf16 instructions): the checkpoint's values are bf16,
            // so widening them is exact and the logits are float32's, bit for bit, from weights half the size.
            Assert.Equal(0, max);
            Assert.InRange(bf16.MemoryUsage.WeightBytes, f32.MemoryUsage.WeightBytes * 0.45, f32.MemoryUsage.WeightBytes * 0.55);
        }
        else
        {
            Assert.InRange(max, 1e-6, 0.25); // bf16 arithmetic has 8 bits of mantissa: close, but not identical
        }
    }

    [Fact]
    public void Auto_keeps_a_bfloat16_checkpoint_in_bf16_and_a_float32_one_in_float32()
    {
        var f32 = ScalarType.Float32;
        var bf16 = ScalarType.BFloat16;
        // Where the kernel runs, with or without bf16 instructions: bf16 (or int8) matrices under float32 arithmetic.
        Assert.Equal((f32, ScalarType.Int8), DeviceAndDtype.ResolveDtypes("int8", CPU, "bfloat16", cpuKernel: true));
        Assert.Equal((f32, bf16), DeviceAndDtype.ResolveDtypes("auto", CPU, "bfloat16", cpuKernel: true));
        Assert.Equal((f32, f32), DeviceAndDtype.ResolveDtypes("auto", CPU, "float32", cpuKernel: true));
        Assert.Equal((f32, f32), DeviceAndDtype.ResolveDtypes("auto", CPU, null, cpuKernel: true));
        Assert.Equal((f32, bf16), DeviceAndDtype.ResolveDtypes("bfloat16", CPU, "float32", cpuKernel: true));
        Assert.Equal((f32, f32), DeviceAndDtype.ResolveDtypes("float32", CPU, "bfloat16", cpuKernel: true));
        // Without the kernel (ACTORQUERY_GEMM=torch, a CPU without AVX2): libtorch's own dtypes, as asked.
        Assert.Equal((bf16, bf16), DeviceAndDtype.ResolveDtypes("bfloat16", CPU, null, cpuKernel: false));
        Assert.Equal(DeviceAndDtype.CpuHasFastBFloat16() ? (bf16, bf16) : (f32, f32), DeviceAndDtype.ResolveDtypes("auto", CPU, "bfloat16", cpuKernel: false));
        var e = Assert.Throws<NotSupportedException>(() => DeviceAndDtype.ResolveDtypes("int8", CPU, null, cpuKernel: false));
        Assert.Contains("int8 weights run only on the hand-written CPU kernel", e.Message);
    }

    [Fact]
    public void Bfloat16_weights_under_float32_arithmetic_without_the_kernel_are_refused_by_name()
    {
        var config = ModelConfig.Load(Path.Combine(Fixtures.Dir("qwen2-tiny-f32"), "config.json"));
        var weights = DecoderWeights.Random(config, ScalarType.Float32, CPU, matrixDtype: ScalarType.BFloat16);
        try
        {
            var e = Assert.Throws<NotSupportedException>(() => new Decoder(weights, kernelThreads: 0));
            Assert.Contains("bfloat16 weights under float32", e.Message);
        }
        finally { weights.Dispose(); }
    }

    [Fact]
    public void Dummy_weights_load_the_config_shape_without_a_checkpoint()
    {
        var dir = Directory.CreateTempSubdirectory("aq-dummy-").FullName;
        try
        {
            File.Copy(Path.Combine(Fixtures.Dir("llama3-tiny-f32"), "config.json"), Path.Combine(dir, "config.json"));
            using var e = InferenceEngine.Load(new EngineOptions { ModelPath = dir, DummyWeights = true, Dtype = "float32", Device = "cpu" });
            Assert.Equal("LlamaForCausalLM", e.Model.Architecture);
            Assert.Equal(e.Config.ParameterCount() * 4, e.MemoryUsage.WeightBytes);
            e.TryAdd(new GenerationRequest(1, [1, 2, 3], SamplingParams.Greedy(5) with { IgnoreEos = true }));
            Assert.Equal(5, Drain(e)[1].Tokens.Count);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("llama3-tiny-f32", "float32")]
    [InlineData("qwen2-tiny-bf16", "bfloat16")]   // on an AVX2 CPU: bf16 weights widened by the kernel every step
    public void Native_memory_returns_to_its_baseline_after_200_generate_and_dispose_cycles(string model, string dtype)
    {
        using var e = Load(model, dtype: dtype);
        var p = SamplingParams.Greedy(4) with { IgnoreEos = true };
        void Cycle(int i)
        {
            e.TryAdd(new GenerationRequest(i, Prompt, p));
            if (i % 4 == 0) { e.Step(); e.Remove(i); }                // some are cancelled mid-way
            else Drain(e);
        }
        for (int i = 0; i < 100; i++) Cycle(i);                       // warm-up: allocator pools, JIT, tiered recompiles
        NativeMemory.CollectAndTrim();
        long baseline = NativeMemory.ResidentBytes();
        for (int i = 100; i < 300; i++) Cycle(i);
        NativeMemory.CollectAndTrim();
        long after = NativeMemory.ResidentBytes();
        Assert.Equal((0, 0), (e.RunningSequences, e.WaitingSequences));
        Assert.Equal(0, e.MemoryUsage.KvUsedBytes);
        Assert.Equal(e.KvCapacityTokens, e.KvFreeTokens);
        Assert.True(after - baseline < 16L << 20, $"RSS grew by {(after - baseline) >> 20} MB over 200 cycles (baseline {baseline >> 20} MB)");
    }

    [Fact]
    public void Disposing_engines_returns_their_memory()
    {
        using (var warm = Load("llama3-tiny-f32")) { }
        NativeMemory.CollectAndTrim();
        long baseline = NativeMemory.ResidentBytes();
        for (int i = 0; i < 20; i++)
        {
            using var e = Load("llama3-tiny-f32");
            e.TryAdd(new GenerationRequest(1, Prompt, SamplingParams.Greedy(4)));
            e.Step();
        }
        NativeMemory.CollectAndTrim();
        long after = NativeMemory.ResidentBytes();
        Assert.True(after - baseline < 16L << 20, $"RSS grew by {(after - baseline) >> 20} MB over 20 load/dispose cycles");
    }
}
