using ActorQuery.Inference.Model;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ActorQuery.Inference.Tests;

/// <summary>The hand-written paged attention agrees with libtorch's SDPA over the same keys and values.</summary>
public sealed class PagedAttentionTests
{
    [Theory]
    [InlineData(14, 2, 64, 3)]   // Qwen2.5-0.5B's heads
    [InlineData(4, 2, 16, 1)]    // the fixtures' heads
    [InlineData(6, 3, 16, 2)]    // the Llama fixture's heads
    [InlineData(8, 8, 8, 2)]     // no grouping
    public void Matches_sdpa_for_tokens_of_different_lengths_in_scattered_blocks(int heads, int kvHeads, int headDim, int threads)
    {
        if (!PagedAttention.Supports(headDim)) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        using var team = new GemmTeam(threads);
        var gen = new Generator(5);
        const int blockSize = 4, slots = 64 * blockSize;
        var keys = randn(new long[] { slots, kvHeads, headDim }, generator: gen);
        var values = randn(new long[] { slots, kvHeads, headDim }, generator: gen);
        int[] lengths = [1, 7, 8, 9, 33, 100];      // one position, block edges, the vector tail of the softmax
        // Each sequence's blocks are scattered over the pool (taken from a shuffled list, as a busy pool hands them out).
        var free = Enumerable.Range(0, 64).OrderBy(i => (i * 37) % 64).ToList();
        var tables = lengths.Select(len => { var t = free.Take((len + blockSize - 1) / blockSize).ToArray(); free.RemoveRange(0, t.Length); return t; }).ToArray();
        var q = randn(new long[] { lengths.Length, heads, headDim }, generator: gen);

        var got = PagedAttention.Run(q, keys, values, tables, lengths, blockSize, heads, kvHeads, headDim, team);

        Assert.Equal(new long[] { lengths.Length, heads * headDim }, got.shape);
        for (int s = 0; s < lengths.Length; s++)
        {
            var slotIds = Enumerable.Range(0, lengths[s]).Select(p => (long)tables[s][p / blockSize] * blockSize + p % blockSize).ToArray();
            var index = tensor(slotIds);
            var k = keys.index_select(0, index).transpose(0, 1).repeat_interleave(heads / kvHeads, dim: 0);   // [heads, L, D]
            var v = values.index_select(0, index).transpose(0, 1).repeat_interleave(heads / kvHeads, dim: 0);
            var expected = F.scaled_dot_product_attention(q[s].unsqueeze(1), k, v).reshape(heads * headDim);   // [heads*D]
            double err = (got[s] - expected).abs().max().item<float>();
            Assert.True(err < 1e-5, $"sequence {s} (length {lengths[s]}): max error {err}");
        }
        // Alone, a sequence gets the same bits as in the batch (its result never depends on the others).
        var alone = PagedAttention.Run(q.narrow(0, 4, 1).contiguous(), keys, values, [tables[4]], [lengths[4]], blockSize, heads, kvHeads, headDim, null);
        Assert.True(alone[0].eq(got[4]).all().item<bool>());
    }
}
