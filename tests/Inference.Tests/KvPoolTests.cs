using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Memory;
using TorchSharp;

namespace ActorQuery.Inference.Tests;

/// <summary>The paged KV pool: adding a sequence is bookkeeping, a full pool preempts the newest, blocks always come back.</summary>
[Collection(TorchGlobalState.Name)]
public class KvPoolTests
{
    // qwen2-tiny: 2 layers × 2 KV heads × 16 dims × 2 (K and V) × 4 bytes = 512 bytes per token, 8 KiB per block of 16.
    private const long BlockBytes = 512 * 16;

    private static InferenceEngine Load(long kvBytes = 1L << 30, int maxTokensPerStep = 512, string model = "qwen2-tiny-f32") =>
        InferenceEngine.Load(new EngineOptions
        {
            ModelPath = Fixtures.Dir(model), Dtype = "float32", Device = "cpu", KvCacheBytes = kvBytes, MaxTokensPerStep = maxTokensPerStep,
        });

    private static SamplingParams Greedy(int tokens) => SamplingParams.Greedy(tokens) with { IgnoreEos = true };

    private static void AssertAllBlocksFree(InferenceEngine e)
    {
        Assert.Equal(e.KvBlocksTotal, e.KvBlocksFree);
        Assert.Equal(e.KvCapacityTokens, e.KvFreeTokens);
        Assert.Equal(0, e.MemoryUsage.KvUsedBytes);
    }

    /// <summary>Each prompt run alone in a roomy engine: the answer batching and preemption must not change.</summary>
    private static List<List<int>> Alone(IEnumerable<int[]> prompts, int tokens, string model = "qwen2-tiny-f32")
    {
        using var e = Load(model: model);
        return prompts.Select((p, i) =>
        {
            Assert.True(e.TryAdd(new GenerationRequest(i, p, Greedy(tokens))).Added);
            var got = new List<int>();
            while (e.HasPendingWork) got.AddRange(e.Step().Updates.Select(u => u.TokenId));
            return got;
        }).ToList();
    }

    [Fact]
    public void Pool_is_allocated_once_from_the_kv_budget_and_adding_needs_only_the_prompts_blocks()
    {
        var longPrompt = Enumerable.Repeat(5, 81).ToArray();
        var longAlone = Alone([longPrompt], 4)[0];
        using var e = Load(kvBytes: BlockBytes * 6 + 100);           // the remainder is not enough for a block
        Assert.Equal((6, 16, 96), (e.KvBlocksTotal, e.KvBlockSize, e.KvCapacityTokens));
        Assert.Equal(6 * BlockBytes, e.MemoryUsage.KvCacheBytes);    // the pool is held from load on
        Assert.Equal(0, e.MemoryUsage.KvUsedBytes);

        int[] seven = [296, 330, 186, 81, 236, 121, 267];
        Assert.True(e.TryAdd(new GenerationRequest(1, seven, Greedy(80))).Added); // 87 tokens in the end, 1 block now
        Assert.Equal(80, e.KvFreeTokens);                            // its first block is reserved

        // 81 + 1 tokens: 6 blocks to start, 5 are free. It is added, to wait with no block reserved.
        Assert.True(e.TryAdd(new GenerationRequest(2, longPrompt, Greedy(4))).Added);
        Assert.Equal((1, 1), (e.RunningSequences, e.WaitingSequences));
        Assert.False(e.Scheduler.Sequences.Single(q => q.Id == 2).Reserved);
        Assert.Equal(0, e.KvFreeTokens);                             // 80 free, less its whole need of 85

        var huge = e.TryAdd(new GenerationRequest(3, seven, Greedy(90)));  // 97 tokens > the whole pool
        Assert.Equal(AddOutcome.TooLarge, huge.Outcome);
        Assert.Contains("whole pool holds 96", huge.Reason);

        // The waiting one runs once the first has ended, and gives the answer it gives alone.
        var got = new List<int>();
        while (e.HasPendingWork)
        {
            bool firstLeft = e.Scheduler.Sequences.All(q => q.Id != 1);
            var updates = e.Step().Updates.Where(u => u.SequenceId == 2).Select(u => u.TokenId).ToList();
            Assert.True(firstLeft || updates.Count == 0, "the waiting sequence ran before the first one ended");
            got.AddRange(updates);
        }
        Assert.Equal(longAlone, got);
        AssertAllBlocksFree(e);
    }

    [Fact]
    public void A_full_pool_preempts_the_newest_sequence_which_later_completes_with_the_same_greedy_answer()
    {
        var cases = Fixtures.Cases("qwen2-tiny-f32");
        int[][] prompts = [cases[0].InputIds, cases[1].InputIds, cases[2].InputIds[..12]]; // 1, 7, 12 tokens
        var alone = Alone(prompts, 24);
        // Five blocks: all three prompts fit (one block each) but not all three grown to their second block.
        using var e = Load(kvBytes: BlockBytes * 5);
        for (int i = 0; i < 3; i++) Assert.True(e.TryAdd(new GenerationRequest(i, prompts[i], Greedy(24))).Added);
        var got = prompts.Select(_ => new List<int>()).ToArray();
        int preemptedInSteps = 0;
        while (e.HasPendingWork)
        {
            var r = e.Step();
            preemptedInSteps += r.Preempted;
            foreach (var u in r.Updates) got[u.SequenceId].Add(u.TokenId);
            // The two older sequences never lose a step: only the newest is preempted.
            for (int i = 0; i < 2; i++) Assert.True(got[i].Count == 24 || r.Updates.Any(u => u.SequenceId == i), $"sequence {i} stalled");
            Assert.True(e.KvBlocksFree >= 0 && e.KvBlocksFree <= 5);
        }
        Assert.True(preemptedInSteps >= 1);
        Assert.Equal(preemptedInSteps, e.PreemptionsTotal);
        for (int i = 0; i < 3; i++) Assert.Equal(alone[i], got[i]);
        AssertAllBlocksFree(e);
    }

    [Theory]
    [InlineData(64)]
    [InlineData(8)]                                                  // long prompts prefill over many steps, holding blocks meanwhile
    public void Sixteen_streams_in_a_pool_too_small_for_them_all_give_each_its_answer_alone(int maxTokensPerStep)
    {
        var cases = Fixtures.Cases("llama3-tiny-f32");
        var prompts = Enumerable.Range(0, 16).Select(i => cases[i % cases.Count].InputIds[..Math.Max(1, cases[i % cases.Count].InputIds.Length - 3 * i)]).ToList();
        var alone = Alone(prompts, 20, "llama3-tiny-f32");
        // llama3-tiny: 3 layers × 2 KV heads × 16 dims × 2 × 4 bytes = 768 bytes per token. 24 blocks (384 tokens)
        // hold the longest prompt + 20 new tokens, far from all sixteen.
        using var e = InferenceEngine.Load(new EngineOptions
        {
            ModelPath = Fixtures.Dir("llama3-tiny-f32"), Dtype = "float32", Device = "cpu", KvCacheBytes = 768 * 16 * 24, MaxTokensPerStep = maxTokensPerStep,
        });
        var waiting = new Queue<int>(Enumerable.Range(0, 16));
        var got = prompts.Select(_ => new List<int>()).ToArray();
        while (waiting.Count > 0 || e.HasPendingWork)
        {
            while (waiting.Count > 0)                                 // the engine queues what does not fit yet
            {
                var id = waiting.Dequeue();
                Assert.True(e.TryAdd(new GenerationRequest(id, prompts[id], Greedy(20))).Added);
            }
            foreach (var u in e.Step().Updates) got[u.SequenceId].Add(u.TokenId);
        }
        Assert.True(e.PreemptionsTotal >= 1, "the pool was meant to run dry");
        for (int i = 0; i < 16; i++) Assert.Equal(alone[i], got[i]);
        AssertAllBlocksFree(e);
    }

    [Fact]
    public void Blocks_come_back_after_finish_cancel_mid_prefill_cancel_mid_decode_and_cancel_while_preempted()
    {
        var cases = Fixtures.Cases("qwen2-tiny-f32");
        using var e = Load(kvBytes: BlockBytes * 5, maxTokensPerStep: 8);

        // Cancelled mid-prefill: a 64-token prompt fed 8 tokens a step.
        Assert.True(e.TryAdd(new GenerationRequest(1, cases[2].InputIds, Greedy(4))).Added);
        e.Step(); e.Step();
        Assert.True(e.KvBlocksFree < 5);
        Assert.True(e.Remove(1));
        AssertAllBlocksFree(e);

        // Cancelled mid-decode, and one that finishes.
        e.TryAdd(new GenerationRequest(2, cases[1].InputIds, Greedy(20)));
        e.TryAdd(new GenerationRequest(3, cases[0].InputIds, Greedy(3)));
        for (int i = 0; i < 4; i++) e.Step();
        Assert.True(e.Remove(2));
        while (e.HasPendingWork) e.Step();
        Assert.False(e.Remove(3));                                   // finished: already freed
        AssertAllBlocksFree(e);

        // Cancelled while preempted: the newest of three is parked when the pool runs dry, then cancelled.
        int[][] prompts = [cases[0].InputIds, cases[1].InputIds, cases[2].InputIds[..12]];
        for (int i = 0; i < 3; i++) e.TryAdd(new GenerationRequest(10 + i, prompts[i], Greedy(24)));
        int guard = 0;
        while (e.Step().Preempted == 0) Assert.True(++guard < 100, "no preemption");
        Assert.True(e.Remove(12));
        Assert.Equal((2, 0), (e.RunningSequences, e.WaitingSequences));
        while (e.HasPendingWork) e.Step();
        AssertAllBlocksFree(e);
        Assert.Equal((0, 0), (e.RunningSequences, e.WaitingSequences));
    }

    [Fact]
    public void Steady_state_serving_allocates_no_new_kv_tensors()
    {
        using var e = Load(1L << 20, maxTokensPerStep: 32, model: "llama3-tiny-f32");
        var cases = Fixtures.Cases("llama3-tiny-f32");
        long next = 0;
        void Cycle()
        {
            // Eight streams of mixed lengths; some cancelled mid-way, the rest run to their length.
            var ids = new List<long>();
            for (int i = 0; i < 8; i++)
            {
                var prompt = cases[i % cases.Count].InputIds[..Math.Max(1, cases[i % cases.Count].InputIds.Length - 7 * i)];
                if (e.TryAdd(new GenerationRequest(next, prompt, Greedy(4 + i))).Added) ids.Add(next);
                next++;
            }
            for (int s = 0; s < 3; s++) e.Step();
            foreach (var id in ids.Where(id => id % 3 == 0)) e.Remove(id);
            while (e.HasPendingWork) e.Step();
        }
        for (int i = 0; i < 5; i++) Cycle();                         // warm-up
        var stats = DisposeScopeManager.Statistics;
        long live = stats.ThreadTotalLiveCount, outside = stats.CreatedOutsideScopeCount, pool = e.MemoryUsage.KvCacheBytes;
        NativeMemory.CollectAndTrim();
        long rss = NativeMemory.ResidentBytes();
        for (int i = 0; i < 40; i++) Cycle();
        NativeMemory.CollectAndTrim();
        long grown = NativeMemory.ResidentBytes() - rss;
        Assert.Equal(live, stats.ThreadTotalLiveCount);               // every step's temporaries were disposed
        Assert.Equal(outside, stats.CreatedOutsideScopeCount);        // and no tensor was made to outlive a step
        Assert.Equal(pool, e.MemoryUsage.KvCacheBytes);
        AssertAllBlocksFree(e);
        Assert.True(grown < 16L << 20, $"RSS grew by {grown >> 20} MB over 40 cycles of 8 streams");
    }
}
