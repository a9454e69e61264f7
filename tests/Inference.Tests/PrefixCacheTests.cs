using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Model;

namespace ActorQuery.Inference.Tests;

/// <summary>
/// Automatic prefix caching as bookkeeping, with no model: full blocks are shared by reference, kept while unused and
/// evicted least recently released first only when the free list is empty; a request whose prompt was seen before
/// prefills only what the cache lacks. A step is simulated as in <see cref="SchedulerTests"/>.
/// </summary>
public class PrefixCacheTests
{
    private const int Eos = 0, Token = 7;

    private static Scheduler Create(int blocks, int blockSize, bool prefixCaching = true, int maxTokensPerStep = 64) =>
        new(new KvBlockAllocator(blocks, blockSize), 32, maxTokensPerStep, 4096, [Eos], prefixCaching);

    private static GenerationRequest Request(long id, int[] prompt, int maxNewTokens) => new(id, prompt, SamplingParams.Greedy(maxNewTokens));

    private static int[] Prompt(int tokens, int first = 1) => Enumerable.Range(first, tokens).ToArray();

    /// <summary>Stores each chunk's tokens as the forward pass would, and gives each sampling chunk a token.</summary>
    private static void Execute(Scheduler s, IReadOnlyList<ScheduledChunk> batch)
    {
        foreach (var c in batch)
        {
            Assert.Equal(c.Start, c.Sequence.Table.Length);
            c.Sequence.Table.Length += c.Count;
        }
        foreach (var c in batch)
            if (c.Samples) s.Update(c.Sequence, Token);
    }

    /// <summary>Runs every sequence to its end; returns how many tokens each fed in prefill and decode steps together.</summary>
    private static Dictionary<long, int> RunToEnd(Scheduler s)
    {
        var fed = new Dictionary<long, int>();
        for (int guard = 0; s.Sequences.Count > 0; guard++)
        {
            Assert.True(guard < 1000, "the scheduler stopped making progress");
            var batch = s.Schedule();
            foreach (var c in batch) fed[c.Sequence.Id] = fed.GetValueOrDefault(c.Sequence.Id) + c.Count;
            Execute(s, batch);
        }
        return fed;
    }

    private static KvBlockTable Written(KvBlockAllocator a, int tokens)
    {
        var t = new KvBlockTable(a);
        Assert.True(a.TryGrow(t, tokens));
        t.Length = tokens;
        return t;
    }

    private static List<UInt128> Hashes(int[] tokens, int blockSize)
    {
        var list = new List<UInt128>();
        for (int i = 0; (i + 1) * blockSize <= tokens.Length; i++)
            list.Add(PrefixHash.Of(i == 0 ? UInt128.Zero : list[i - 1], tokens.AsSpan(i * blockSize, blockSize)));
        return list;
    }

    [Fact]
    public void A_block_hash_names_every_token_before_it_not_only_its_own()
    {
        int[] a = [1, 2, 3, 4, 5, 6, 7, 8], b = [9, 2, 3, 4, 5, 6, 7, 8];
        Assert.Equal(Hashes(a, 4)[0], Hashes(a, 4)[0]);
        Assert.NotEqual(Hashes(a, 4)[1], Hashes(b, 4)[1]);  // same tokens 5..8, different prefix
    }

    [Fact]
    public void A_cached_block_is_shared_by_counting_references_and_is_free_again_only_when_its_last_holder_lets_go()
    {
        var a = new KvBlockAllocator(8, 4);
        var hashes = Hashes(Prompt(8), 4);
        var first = Written(a, 8);
        a.Cache(first, 0, hashes[0]);
        a.Cache(first, 1, hashes[1]);

        var second = new KvBlockTable(a);
        Assert.Equal(2, a.TakeCached(second, hashes));
        Assert.Equal(first.Blocks, second.Blocks);
        Assert.Equal(8, second.Length);
        Assert.Equal(6, a.FreeBlocks);                      // two blocks, held twice

        var shared = second.Blocks.ToArray();
        a.Release(first);
        Assert.Equal(6, a.FreeBlocks);                      // the second still holds them
        Assert.All(second.Blocks, b => Assert.Equal(1, a.ReferencesTo(b)));
        a.Release(second);
        Assert.Equal(8, a.FreeBlocks);                      // unheld: free to take, yet still cached
        Assert.Equal(2, a.CachedBlocks);
        Assert.Equal(2, a.EvictableBlocks);
        var stale = new KvBlockTable(a);
        stale.Blocks.Add(shared[0]);
        Assert.Throws<InvalidOperationException>(() => a.Release(stale));  // a reference nobody holds any more
    }

    [Fact]
    public void Unheld_cached_blocks_are_evicted_only_when_the_free_list_is_empty_least_recently_released_first()
    {
        var a = new KvBlockAllocator(4, 4);
        var older = Hashes(Prompt(4, first: 100), 4);
        var newer = Hashes(Prompt(4, first: 200), 4);
        var t1 = Written(a, 4); a.Cache(t1, 0, older[0]); a.Release(t1);
        var t2 = Written(a, 4); a.Cache(t2, 0, newer[0]); a.Release(t2);
        Assert.Equal(2, a.CachedBlocks);

        var fresh = Written(a, 8);                          // the two never-cached blocks: nothing evicted
        Assert.Equal(2, a.CachedBlocks);
        Assert.Equal(0, a.EvictionsTotal);

        var more = Written(a, 4);                           // the free list is empty: the older cached block goes
        Assert.Equal(1, a.EvictionsTotal);
        Assert.Equal(0, a.CachedPrefixBlocks(older));
        Assert.Equal(1, a.CachedPrefixBlocks(newer));
        a.Release(fresh);
        a.Release(more);
    }

    [Fact]
    public void A_cached_block_that_a_sequence_holds_is_never_evicted_the_pool_says_no_instead()
    {
        var a = new KvBlockAllocator(4, 4);
        var hashes = Hashes(Prompt(8), 4);
        var holder = Written(a, 8);
        a.Cache(holder, 0, hashes[0]);
        a.Cache(holder, 1, hashes[1]);
        var other = Written(a, 8);                          // the rest of the pool
        Assert.Equal(0, a.FreeBlocks);
        Assert.False(a.TryGrow(other, 12));
        Assert.Equal(2, a.CachedPrefixBlocks(hashes));
        Assert.Equal(0, a.EvictionsTotal);
        var sharer = new KvBlockTable(a);
        Assert.Equal(2, a.TakeCached(sharer, hashes));     // still there to share
    }

    [Fact]
    public void A_request_with_a_prompt_seen_before_prefills_only_the_tokens_the_cache_lacks()
    {
        var s = Create(blocks: 64, blockSize: 4);
        var prompt = Prompt(37);
        Assert.True(s.TryAdd(Request(1, prompt, 3)).Added);
        Assert.Equal(37 + 2, RunToEnd(s)[1]);               // 37 prompt tokens, then two decode steps

        Assert.True(s.TryAdd(Request(2, prompt, 3)).Added);
        var first = s.Schedule();
        Assert.Equal([(2L, 36, 1)], first.Select(c => (c.Sequence.Id, c.Start, c.Count)).ToArray());
        Assert.Equal(36, first[0].Sequence.CachedPromptTokens);
        Execute(s, first);
        RunToEnd(s);
        Assert.Equal(64, s.Blocks.FreeBlocks);              // every reference given back
    }

    [Fact]
    public void A_prompt_cached_whole_still_computes_its_last_token_so_that_it_has_logits()
    {
        var s = Create(blocks: 64, blockSize: 4);
        var prompt = Prompt(16);
        Assert.True(s.TryAdd(Request(1, prompt, 2)).Added);
        RunToEnd(s);
        Assert.True(s.TryAdd(Request(2, prompt, 2)).Added);
        var batch = s.Schedule();
        Assert.Equal([(2L, 12, 4)], batch.Select(c => (c.Sequence.Id, c.Start, c.Count)).ToArray());
        Assert.True(batch[0].Samples);
        Assert.Equal(12, batch[0].Sequence.CachedPromptTokens);
    }

    [Fact]
    public void A_shared_system_prompt_is_reused_and_a_different_question_after_it_is_computed()
    {
        var s = Create(blocks: 64, blockSize: 4);
        int[] system = Prompt(20);
        Assert.True(s.TryAdd(Request(1, [.. system, 90, 91, 92], 1)).Added);
        RunToEnd(s);
        Assert.True(s.TryAdd(Request(2, [.. system, 80, 81], 1)).Added);
        var batch = s.Schedule();
        Assert.Equal(20, batch[0].Start);                    // the five blocks of the system prompt
        Assert.Equal(2, batch[0].Count);
    }

    [Fact]
    public void Requests_that_share_a_prompt_not_yet_cached_wait_for_the_first_to_prefill_it_once()
    {
        var s = Create(blocks: 64, blockSize: 4);
        var prompt = Prompt(40);
        for (long id = 1; id <= 3; id++) Assert.True(s.TryAdd(Request(id, prompt, 2)).Added);
        Assert.True(s.TryAdd(Request(4, Prompt(10, first: 300), 2)).Added);   // an unrelated prompt is not held back

        var first = s.Schedule();
        Assert.Equal([(1L, 40), (4L, 10)], first.Select(c => (c.Sequence.Id, c.Count)).ToArray());
        Execute(s, first);
        var second = s.Schedule();
        Assert.Equal([(1L, 1), (4L, 1), (2L, 4), (3L, 4)], second.Select(c => (c.Sequence.Id, c.Count)).ToArray());
        Assert.All(second.Where(c => c.Sequence.Id is 2 or 3), c => Assert.Equal(36, c.Sequence.CachedPromptTokens));
        Execute(s, second);
        RunToEnd(s);
        Assert.Equal(64, s.Blocks.FreeBlocks);
    }

    [Fact]
    public void With_prefix_caching_off_a_repeated_prompt_is_prefilled_again_and_nothing_is_cached()
    {
        var s = Create(blocks: 64, blockSize: 4, prefixCaching: false);
        var prompt = Prompt(37);
        for (long id = 1; id <= 2; id++) Assert.True(s.TryAdd(Request(id, prompt, 2)).Added);
        var first = s.Schedule();
        Assert.Equal([(1L, 37), (2L, 27)], first.Select(c => (c.Sequence.Id, c.Count)).ToArray());  // no waiting either
        Execute(s, first);
        RunToEnd(s);
        Assert.True(s.TryAdd(Request(3, prompt, 2)).Added);
        var again = s.Schedule();
        Assert.Equal([(3L, 0, 37)], again.Select(c => (c.Sequence.Id, c.Start, c.Count)).ToArray());
        Assert.Equal(0, again[0].Sequence.CachedPromptTokens);
        Assert.Equal(0, s.Blocks.CachedBlocks);
    }

    [Fact]
    public void A_preempted_sequence_is_recomputed_from_the_blocks_it_had_written_when_they_are_still_cached()
    {
        // 12 blocks of 4: two sequences of 20 prompt + 20 new tokens need 20 blocks, so the newer one is preempted and
        // recomputed once the older one ends; prefix caching keeps some of its written blocks for that recompute.
        int Fed(bool prefixCaching)
        {
            var s = Create(blocks: 12, blockSize: 4, prefixCaching);
            Assert.True(s.TryAdd(Request(1, Prompt(20, first: 1), 20)).Added);
            Assert.True(s.TryAdd(Request(2, Prompt(20, first: 100), 20)).Added);
            var fed = RunToEnd(s).Values.Sum();
            Assert.True(s.PreemptionsTotal >= 1, "the pool was meant to run dry");
            Assert.Equal(12, s.Blocks.FreeBlocks);
            return fed;
        }
        Assert.True(Fed(prefixCaching: true) < Fed(prefixCaching: false));
    }
}
