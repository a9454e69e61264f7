using System.Runtime.InteropServices;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Model;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Tests;

/// <summary>Many sequences per forward pass must give each the answer it gets alone.</summary>
[Collection(TorchGlobalState.Name)]
public class BatchingTests
{
    private static InferenceEngine Load(string model, int maxTokensPerStep = 512) =>
        InferenceEngine.Load(new EngineOptions { ModelPath = Fixtures.Dir(model), Dtype = "float32", Device = "cpu", MaxTokensPerStep = maxTokensPerStep });

    /// <summary>16 prompts: the fixture cases, then prefixes of them, so lengths and positions all differ.</summary>
    private static List<int[]> Prompts(string model)
    {
        var cases = Fixtures.Cases(model).Select(c => c.InputIds).ToList();
        var list = new List<int[]>(cases);
        for (int i = 0; list.Count < 16; i++) list.Add(cases[i % cases.Count][..Math.Max(1, cases[i % cases.Count].Length - 1 - i)]);
        return list;
    }

    private static Dictionary<long, List<int>> Run(InferenceEngine e, IEnumerable<(long Id, int[] Prompt)> seqs, int tokens)
    {
        var p = SamplingParams.Greedy(tokens) with { IgnoreEos = true };
        foreach (var (id, prompt) in seqs) Assert.True(e.TryAdd(new GenerationRequest(id, prompt, p)).Added);
        var result = new Dictionary<long, List<int>>();
        while (e.HasPendingWork)
            foreach (var u in e.Step().Updates)
                (result.TryGetValue(u.SequenceId, out var l) ? l : result[u.SequenceId] = new()).Add(u.TokenId);
        return result;
    }

    [Theory]
    [InlineData("qwen2-tiny-f32")]
    [InlineData("llama3-tiny-f32")]
    public void Greedy_output_is_identical_alone_and_among_15_others(string model)
    {
        using var e = Load(model);
        var prompts = Prompts(model);
        var together = Run(e, prompts.Select((p, i) => ((long)i, p)), 24);
        for (int i = 0; i < prompts.Count; i++)
            Assert.Equal(Run(e, [(100 + i, prompts[i])], 24)[100 + i], together[i]);
    }

    [Fact]
    public void A_step_that_fails_in_the_final_projection_leaves_the_caches_as_they_were_and_runs_again_exactly()
    {
        using var e = Load("qwen2-tiny-f32");
        var decoder = e.Runner.Decoder;
        var prompt = Prompts("qwen2-tiny-f32")[0];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var pool = new KvBlockPool(decoder.Weights, 1024, 4);
        KvBlockTable Table() { var t = new KvBlockTable(pool.Allocator); Assert.True(pool.Allocator.TryGrow(t, prompt.Length + 1)); return t; }
        var clean = Table();
        var expected = decoder.Forward(pool, [new BatchItem(prompt, clean, true)])!;

        var table = Table();
        decoder.BeforeProjection = () => throw new OutOfMemoryException("injected in the final projection");
        try { Assert.Throws<OutOfMemoryException>(() => decoder.Forward(pool, [new BatchItem(prompt, table, true)])); }
        finally { decoder.BeforeProjection = null; }
        Assert.Equal(0, table.Length);

        var again = decoder.Forward(pool, [new BatchItem(prompt, table, true)])!;
        Assert.Equal(prompt.Length, table.Length);
        Assert.True(expected.allclose(again, rtol: 0, atol: 1e-6), "the step run again gives the clean run's logits");
        var next = decoder.Forward(pool, [new BatchItem([7], table, true)])!;          // and the cache goes on from there
        Assert.True(decoder.Forward(pool, [new BatchItem([7], clean, true)])!.allclose(next, rtol: 0, atol: 1e-6));
    }

    [Theory]
    [InlineData("qwen2-tiny-f32")]
    [InlineData("llama3-tiny-f32")]
    public void Batched_logits_are_within_1e3_of_each_sequence_alone(string model)
    {
        using var e = Load(model);
        var decoder = e.Runner.Decoder;
        var prompts = Prompts(model);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var pool = new KvBlockPool(decoder.Weights, 1024, 4); // small blocks: every sequence spans several
        KvBlockTable Table(int tokens) { var t = new KvBlockTable(pool.Allocator); Assert.True(pool.Allocator.TryGrow(t, tokens)); return t; }
        // Batched: every prompt's tokens in one pass, then one decode token each in a second pass.
        var tables = prompts.Select(p => Table(p.Length + 1)).ToList();
        var prefill = decoder.Forward(pool, prompts.Select((p, i) => new BatchItem(p, tables[i], true)).ToList())!;
        var decode = decoder.Forward(pool, prompts.Select((p, i) => new BatchItem([7], tables[i], true)).ToList())!;
        double max = 0;
        for (int i = 0; i < prompts.Count; i++)
        {
            var alone = Table(prompts[i].Length + 1);
            var a1 = decoder.Forward(pool, [new BatchItem(prompts[i], alone, true)])!;
            var a2 = decoder.Forward(pool, [new BatchItem([7], alone, true)])!;
            max = Math.Max(max, prefill[i].sub(a1[0]).abs().max().item<float>());
            max = Math.Max(max, decode[i].sub(a2[0]).abs().max().item<float>());
            pool.Allocator.Release(alone);
        }
        Assert.True(max <= 1e-3, $"max |logit diff| batched vs alone = {max:E2}");
    }

    [Fact]
    public void Long_prompts_prefill_in_chunks_while_running_streams_keep_getting_a_token_every_step()
    {
        using var e = Load("qwen2-tiny-f32", maxTokensPerStep: 8);
        var cases = Fixtures.Cases("qwen2-tiny-f32");
        var longCase = cases.OrderByDescending(c => c.InputIds.Length).First();
        Assert.True(longCase.InputIds.Length > 16);
        var p = SamplingParams.Greedy(24) with { IgnoreEos = true };
        e.TryAdd(new GenerationRequest(1, cases[0].InputIds, p));
        e.Step();                                                      // stream 1 is running
        e.TryAdd(new GenerationRequest(2, longCase.InputIds, p));
        int steps = 0;
        var got = new Dictionary<long, List<int>> { [1] = new(), [2] = new() };
        while (e.HasPendingWork)
        {
            var updates = e.Step().Updates;
            steps++;
            if (got[1].Count < 23) Assert.Contains(updates, u => u.SequenceId == 1); // never stalled by the prefill
            foreach (var u in updates) got[u.SequenceId].Add(u.TokenId);
        }
        Assert.Equal(longCase.GreedyIds, got[2]);                      // chunked prefill gives the same answer
        Assert.Equal(cases[0].GreedyIds.Skip(1), got[1]);
    }

    [Fact]
    public void Out_of_memory_in_a_step_preempts_the_newest_sequence_which_is_recomputed_with_the_same_answer()
    {
        using var e = Load("qwen2-tiny-f32");
        int failures = 0;
        // Any batch of more than two sequences "runs out of memory", as a real allocator failure reads.
        e.Runner.BeforeForward = n =>
        {
            if (n > 2) { failures++; throw new ExternalException("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes."); }
        };
        var cases = Fixtures.Cases("qwen2-tiny-f32");
        var seqs = cases.Take(4).Select(c => ((long)c.Index, c.InputIds)).ToList();
        var r = Run(e, seqs, 24);
        Assert.True(failures > 0);
        Assert.True(e.PreemptionsTotal >= 2);
        foreach (var c in cases.Take(4)) Assert.Equal(c.GreedyIds, r[c.Index]);
    }

    [Fact]
    public void Out_of_memory_with_a_single_sequence_is_thrown_to_the_caller_and_leaves_the_engine_usable()
    {
        using var e = Load("qwen2-tiny-f32");
        bool fail = true;
        e.Runner.BeforeForward = _ => { if (fail) throw new ExternalException("CUDA out of memory. Tried to allocate 1024.00 GiB"); };
        var c = Fixtures.Cases("qwen2-tiny-f32")[1];
        e.TryAdd(new GenerationRequest(1, c.InputIds, SamplingParams.Greedy(24) with { IgnoreEos = true }));
        var ex = Assert.Throws<ExternalException>(() => e.Step());
        Assert.True(ActorQuery.Contracts.OutOfMemory.IsOutOfMemory(ex));
        fail = false;
        var got = new List<int>();
        while (e.HasPendingWork) got.AddRange(e.Step().Updates.Select(u => u.TokenId));
        Assert.Equal(c.GreedyIds, got);
    }
}
