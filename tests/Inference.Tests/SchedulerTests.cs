using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Model;

namespace ActorQuery.Inference.Tests;

/// <summary>
/// The scheduler's policy on its own, with no model and no tensor: a step is simulated by advancing each chunk's
/// block table as the forward pass would, and giving every sampling chunk a token.
/// </summary>
public class SchedulerTests
{
    private const int Eos = 0, Token = 7;

    private static Scheduler Create(int blocks, int blockSize, int maxTokensPerStep = 64, int maxBatch = 32, int context = 4096,
                                    int prefillPerDecodeToken = 0) =>
        new(new KvBlockAllocator(blocks, blockSize), maxBatch, maxTokensPerStep, context, [Eos], prefillPerDecodeToken: prefillPerDecodeToken);

    private static GenerationRequest Request(long id, int promptTokens, int maxNewTokens) =>
        new(id, Enumerable.Range(1, promptTokens).ToArray(), SamplingParams.Greedy(maxNewTokens));

    private static void Add(Scheduler s, long id, int promptTokens, int maxNewTokens) =>
        Assert.Equal(AddOutcome.Added, s.TryAdd(Request(id, promptTokens, maxNewTokens)).Outcome);

    /// <summary>What the runner and the engine do with a scheduled batch: store its tokens, sample, update.</summary>
    private static List<(long Id, FinishReason? Finish)> Execute(Scheduler s, IReadOnlyList<ScheduledChunk> batch)
    {
        var done = new List<(long, FinishReason?)>();
        foreach (var c in batch)
        {
            Assert.Equal(c.Start, c.Sequence.Table.Length);
            c.Sequence.Table.Length += c.Count;
            Assert.True(c.Sequence.Table.Length <= c.Sequence.Table.Capacity, "a chunk ran past its blocks");
        }
        foreach (var c in batch)
            if (c.Samples) done.Add((c.Sequence.Id, s.Update(c.Sequence, Token)));
        return done;
    }

    private static (long Id, int Count)[] Shape(IReadOnlyList<ScheduledChunk> batch) => batch.Select(c => (c.Sequence.Id, c.Count)).ToArray();

    [Fact]
    public void A_resumed_sequence_prefills_prompt_and_generated_tokens_and_generates_only_the_rest_of_its_budget()
    {
        var s = Create(blocks: 16, blockSize: 4);
        var resumed = Request(1, 5, 10) with { Generated = [9, 8, 7, 6] };
        Assert.Equal(AddOutcome.Added, s.TryAdd(resumed).Outcome);
        var first = s.Schedule();
        Assert.Equal([(1L, 9)], Shape(first));                                       // prompt + generated in one chunk
        int tokens = Execute(s, first).Count;
        for (FinishReason? finish = null; finish is null; tokens++) finish = Execute(s, s.Schedule()).Single().Finish;
        Assert.Equal(10 - 4, tokens);                                               // 4 of its 10 were generated before
    }

    [Fact]
    public void A_resumed_sequence_counts_the_tokens_before_the_cut_toward_min_tokens()
    {
        var s = Create(blocks: 16, blockSize: 4);
        // The simulated step's token is a stop token here, honoured from the 3rd token on: 2 came before the cut.
        var p = SamplingParams.Greedy(10) with { MinNewTokens = 3, StopTokenIds = [Token] };
        Assert.Equal(AddOutcome.Added, s.TryAdd(new GenerationRequest(1, [1, 2, 3], p) { Generated = [5, 5] }).Outcome);
        Assert.Equal(FinishReason.Stop, Execute(s, s.Schedule()).Single().Finish);
    }

    [Fact]
    public void Running_sequences_decode_first_oldest_first_and_new_prompts_prefill_after_them()
    {
        var s = Create(blocks: 16, blockSize: 4);
        Add(s, 1, 3, 10);
        Add(s, 2, 5, 10);
        Execute(s, s.Schedule());                                  // both prompts prefilled: both decode from now on
        Add(s, 3, 6, 10);
        var batch = s.Schedule();
        Assert.Equal([(1L, 1), (2L, 1), (3L, 6)], Shape(batch));
        Assert.All(batch, c => Assert.True(c.Samples));
    }

    [Fact]
    public void While_sequences_decode_a_step_prefills_at_most_twice_their_tokens_but_never_under_the_floor_and_alone_the_whole_budget()
    {
        var s = Create(blocks: 256, blockSize: 16, maxTokensPerStep: 64, prefillPerDecodeToken: 2);
        Add(s, 100, 200, 50);
        Assert.Equal([(100L, 64)], Shape(s.Schedule()));                          // nothing decodes: the whole budget
        var t = Create(blocks: 256, blockSize: 16, maxTokensPerStep: 64, prefillPerDecodeToken: 2);
        for (int id = 1; id <= 20; id++) Add(t, id, 1, 50);
        Execute(t, t.Schedule());                                                  // 20 one-token prompts: all decode now
        Add(t, 100, 200, 50);
        var batch = t.Schedule();
        Assert.Equal(20, batch.Count(c => c.Count == 1));
        Assert.Equal(40, batch.Single(c => c.Sequence.Id == 100).Count);            // 2 × 20 decode tokens (44 left in the budget)
        Execute(t, batch);
        for (int id = 1; id <= 18; id++) Assert.True(t.Remove(id));                // two left decoding
        Assert.Equal(Scheduler.MinPrefillChunk, t.Schedule().Single(c => c.Sequence.Id == 100).Count); // 2 × 2 = 4, raised to the floor
    }

    [Fact]
    public void Prompts_prefill_first_come_first_served_in_chunks_that_fit_the_token_budget()
    {
        var s = Create(blocks: 16, blockSize: 4, maxTokensPerStep: 8);
        Add(s, 1, 10, 4);
        Add(s, 2, 5, 4);
        var first = s.Schedule();
        Assert.Equal([(1L, 8)], Shape(first));                     // the budget ends inside the first prompt
        Assert.False(first[0].Samples);                            // a partial chunk samples nothing
        Assert.Empty(Execute(s, first));
        var second = s.Schedule();
        Assert.Equal([(1L, 2), (2L, 5)], Shape(second));           // the rest of the first, then the next prompt
        Execute(s, second);
        Assert.Equal([(1L, 1), (2L, 1)], Shape(s.Schedule()));
    }

    [Fact]
    public void A_later_prompt_never_starts_while_an_earlier_one_still_has_tokens_to_prefill()
    {
        // A small pool and budget, many prompts of mixed sizes: every step is checked against the policy.
        var s = Create(blocks: 12, blockSize: 4, maxTokensPerStep: 6, maxBatch: 4);
        var rng = new Random(5);
        var pending = new Queue<GenerationRequest>(Enumerable.Range(0, 24).Select(i => Request(i, rng.Next(1, 14), rng.Next(1, 12))));
        int steps = 0;
        while (pending.Count > 0 || s.Sequences.Count > 0)
        {
            while (pending.Count > 0 && s.TryAdd(pending.Peek()).Added) pending.Dequeue();
            var order = s.Sequences.Select(q => q.Id).ToList();
            var batch = s.Schedule();
            Assert.NotEmpty(batch);
            Assert.True(batch.Count <= 4);
            var decodes = batch.TakeWhile(c => c.Count == 1 && c.Start > 0 && c.Start + 1 == c.Sequence.Tokens.Count).ToList();
            var prefills = batch.Skip(decodes.Count).ToList();
            // FCFS within each kind, and every prefill chunk but the last takes all of its sequence's pending tokens.
            Assert.Equal(decodes.Select(c => order.IndexOf(c.Sequence.Id)).Order(), decodes.Select(c => order.IndexOf(c.Sequence.Id)));
            Assert.Equal(prefills.Select(c => order.IndexOf(c.Sequence.Id)).Order(), prefills.Select(c => order.IndexOf(c.Sequence.Id)));
            for (int i = 0; i < prefills.Count - 1; i++) Assert.True(prefills[i].Samples, "a later prompt overtook an unfinished one");
            if (batch.Count > 1) Assert.True(batch.Sum(c => c.Count) <= 6, "the step went over its token budget");
            Execute(s, batch);
            Assert.True(++steps < 10_000, "the queue stopped moving");
        }
        Assert.Equal(12, s.Blocks.FreeBlocks);                      // every block came back
    }

    [Fact]
    public void A_decoding_sequence_that_needs_a_block_preempts_the_newest_which_is_recomputed_from_all_its_tokens_later()
    {
        var s = Create(blocks: 2, blockSize: 2);
        Add(s, 1, 1, 3);
        Add(s, 2, 1, 3);
        Execute(s, s.Schedule());                                  // each holds one block: the pool is full
        Execute(s, s.Schedule());                                  // both decode within their first block
        var batch = s.Schedule();                                  // the oldest needs a second block
        Assert.Equal([(1L, 1)], Shape(batch));
        var newest = s.Sequences.Single(q => q.Id == 2);
        Assert.True(newest.Parked);
        Assert.Empty(newest.Table.Blocks);
        Assert.Equal(1, s.PreemptionsTotal);
        Assert.Equal(3, newest.Tokens.Count);                      // prompt + the two tokens it got, kept for the recompute
        // The parked sequence waits until the oldest leaves, then is prefilled again from all its tokens.
        while (s.Sequences.Any(q => q.Id == 1))
        {
            var step = s.Schedule();
            Assert.DoesNotContain(step, c => c.Sequence.Id == 2);
            Execute(s, step);
        }
        Assert.Equal([(2L, 3)], Shape(s.Schedule()));
    }

    [Fact]
    public void The_newest_sequence_of_a_batch_that_ran_out_of_memory_is_preempted()
    {
        var s = Create(blocks: 8, blockSize: 4);
        Add(s, 1, 2, 4);
        Add(s, 2, 2, 4);
        Add(s, 3, 2, 4);
        var batch = s.Schedule();
        s.PreemptNewest(batch);
        Assert.Equal([false, false, true], s.Sequences.Select(q => q.Parked));
        Assert.Equal([(1L, 2), (2L, 2)], Shape(s.Schedule()));
    }

    [Fact]
    public void Adding_refuses_what_can_never_fit_and_defers_what_does_not_fit_now()
    {
        var s = Create(blocks: 4, blockSize: 4, context: 12);
        var overContext = s.TryAdd(Request(1, 4, 9));
        Assert.Equal(AddOutcome.TooLarge, overContext.Outcome);
        Assert.Equal(13, overContext.TokensNeeded);
        Assert.Contains("exceeds the model's context of 12 tokens", overContext.Reason);

        var wide = Create(blocks: 4, blockSize: 4);
        var overPool = wide.TryAdd(Request(2, 10, 7));             // 17 tokens: 5 blocks, the pool has 4
        Assert.Equal(AddOutcome.TooLarge, overPool.Outcome);
        Assert.Contains("the engine's whole pool holds 16 (4 blocks of 4)", overPool.Reason);

        Add(wide, 3, 7, 8);                                        // 15 tokens in the end; 2 blocks reserved now
        Assert.Equal(8, wide.FreeTokens);
        var later = wide.TryAdd(Request(4, 8, 1));                 // 8 + 1 tokens: 3 blocks to start, 2 are free
        Assert.Equal(AddOutcome.Added, later.Outcome);             // added, to wait with nothing reserved
        var waiting = wide.Sequences[1];
        Assert.Equal((4L, false), (waiting.Id, waiting.Reserved));
        Assert.Equal((1, 1), (wide.RunningCount, wide.WaitingCount));
        Assert.Equal(8, wide.FreeTokens);
        Assert.Equal(0, later.TokensFree);                         // 8 free, less its whole need of 9
        Assert.Throws<ArgumentException>(() => wide.TryAdd(Request(3, 1, 1)));  // the id is taken
        Assert.Throws<ArgumentException>(() => wide.TryAdd(Request(4, 1, 1)));  // by a waiting sequence too

        // It runs once the earlier one has ended, and not before.
        while (wide.Sequences.Any(q => q.Id == 3))
        {
            var step = wide.Schedule();
            Assert.DoesNotContain(step, c => c.Sequence.Id == 4);
            Execute(wide, step);
        }
        Assert.True(waiting.Reserved);
        var first = wide.Schedule();
        Assert.Equal([(4L, 8)], Shape(first));
        Assert.Equal((4L, (FinishReason?)FinishReason.Length), Assert.Single(Execute(wide, first)));
        Assert.Equal(4, wide.Blocks.FreeBlocks);
    }

    [Fact]
    public void Waiting_sequences_are_reserved_first_come_first_served_and_a_small_one_never_overtakes_the_head()
    {
        var s = Create(blocks: 4, blockSize: 4);
        Add(s, 1, 7, 4);                                           // 2 blocks reserved, 2 free
        Add(s, 2, 11, 4);                                          // 11 + 1 tokens: 3 blocks to start, so it waits
        Add(s, 3, 2, 4);                                           // one block would do, but it is behind 2
        Assert.Equal([true, false, false], s.Sequences.Select(q => q.Reserved));
        Assert.Equal(0, s.UnclaimedTokens);                        // 8 free, less 15 and 6 waiting
        while (s.Sequences.Any(q => q.Id == 1))
        {
            Assert.False(s.Sequences.Single(q => q.Id == 3).Reserved, "a later sequence overtook the head of the queue");
            var step = s.Schedule();
            Assert.Equal([1L], step.Select(c => c.Sequence.Id));
            Execute(s, step);
        }
        Assert.Equal([true, true], s.Sequences.Select(q => q.Reserved));
        Assert.Equal([(2L, 11), (3L, 2)], Shape(s.Schedule()));    // prefilled in arrival order
    }

    [Fact]
    public void A_waiting_sequence_can_be_removed_and_the_one_behind_it_moves_up()
    {
        var s = Create(blocks: 4, blockSize: 4);
        Add(s, 1, 7, 4);                                           // 2 blocks reserved, 2 free
        Add(s, 2, 11, 4);                                          // waits: 3 blocks to start
        Add(s, 3, 2, 4);                                           // waits behind it
        Assert.True(s.Remove(2));
        Assert.False(s.Remove(2));
        Assert.Equal([1L, 3L], s.Sequences.Select(q => q.Id));
        Assert.True(s.Sequences[1].Reserved);                      // it fits the two free blocks: one is promised to it
        Assert.Equal(4, s.FreeTokens);
        Assert.Equal(4, s.Blocks.FreeBlocks);                      // a waiting sequence never held a block
        Assert.Equal([(1L, 7), (3L, 2)], Shape(s.Schedule()));
    }

    [Fact]
    public void Sequences_beyond_the_step_limit_wait_unreserved_until_one_leaves()
    {
        var s = Create(blocks: 16, blockSize: 4, maxBatch: 2);
        Add(s, 1, 2, 1);
        Add(s, 2, 2, 3);
        Add(s, 3, 2, 3);
        Assert.Equal((2, 1), (s.RunningCount, s.WaitingCount));
        Execute(s, s.Schedule());                                  // 1 ends with its one token
        Assert.Equal((2, 0), (s.RunningCount, s.WaitingCount));
        Assert.Equal([(2L, 1), (3L, 2)], Shape(s.Schedule()));
    }

    [Fact]
    public void A_sequence_ends_on_eos_after_its_minimum_or_at_its_token_budget_and_gives_its_blocks_back()
    {
        var s = Create(blocks: 4, blockSize: 4);
        Assert.True(s.TryAdd(new GenerationRequest(1, [1, 2], SamplingParams.Greedy(5) with { MinNewTokens = 2 })).Added);
        Add(s, 2, 2, 2);
        var (first, second) = (s.Sequences[0], s.Sequences[1]);
        foreach (var c in s.Schedule()) c.Sequence.Table.Length += c.Count;
        Assert.Equal(2, s.Blocks.UsedBlocks);
        Assert.Null(s.Update(first, Eos));                         // below its minimum: EOS does not end it yet
        Assert.Equal(FinishReason.Stop, s.Update(first, Eos));
        Assert.Null(s.Update(second, Token));
        Assert.Equal(FinishReason.Length, s.Update(second, Token));
        Assert.Empty(s.Sequences);
        Assert.Equal(4, s.Blocks.FreeBlocks);
    }
}
