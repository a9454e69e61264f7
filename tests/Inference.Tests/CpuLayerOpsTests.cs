using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Model;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ActorQuery.Inference.Tests;

/// <summary>The hand-written per-token ops agree with the libtorch ops they replace on the CPU float32 path.</summary>
public sealed class CpuLayerOpsTests
{
    [Theory]
    [InlineData(1, 896)]
    [InlineData(5, 83)]      // a width that is not a multiple of 8 (the scalar tail)
    public void RmsNorm_matches_the_float32_formula(int rows, int width)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(1);
        var x = randn(rows, width, generator: gen) * 3;
        var w = rand(width, generator: gen);
        var expected = x * (x.pow(2).mean(new long[] { -1 }, keepdim: true) + 1e-6).rsqrt() * w;
        Assert.True(CpuLayerOps.RmsNorm(x, w, 1e-6f).allclose(expected, rtol: 1e-5, atol: 1e-6));
    }

    [Theory]
    [InlineData(1, 4864)]
    [InlineData(3, 19)]
    public void SiluMul_matches_silu_of_the_gate_times_the_up_half(int rows, int inter)
    {
        using var scope = NewDisposeScope();
        var gu = randn(rows, 2 * inter, generator: new Generator(2)) * 4;
        var expected = F.silu(gu.narrow(1, 0, inter)) * gu.narrow(1, inter, inter);
        Assert.True(CpuLayerOps.SiluMul(gu).allclose(expected, rtol: 1e-5, atol: 1e-6));
    }

    [Theory]
    [InlineData(64, 4864)]
    [InlineData(9, 19)]
    public void SiluMul_on_a_team_gives_every_row_the_same_bits_as_alone(int rows, int inter)
    {
        using var scope = NewDisposeScope();
        using var team = new GemmTeam(2);
        var gu = randn(rows, 2 * inter, generator: new Generator(3)) * 4;
        var alone = CpuLayerOps.SiluMul(gu);
        var together = CpuLayerOps.SiluMul(gu, team);
        Assert.True(alone.eq(together).all().item<bool>());
        // And row by row: a row computed on its own matches the same row of the batch.
        Assert.True(CpuLayerOps.SiluMul(gu.narrow(0, rows - 1, 1), team).eq(together.narrow(0, rows - 1, 1)).all().item<bool>());
    }

    [Fact]
    public void RopeAndStore_rotates_like_RotaryEmbedding_and_writes_each_token_to_its_slot()
    {
        using var scope = NewDisposeScope();
        int heads = 14, kvHeads = 2, d = 64, n = 5;
        var config = ModelConfig.Load(Path.Combine(Fixtures.Dir("qwen2-tiny-f32"), "config.json")) with { HeadDim = d };
        var rope = new RotaryEmbedding(config, ScalarType.Float32, CPU);
        int[] positions = [0, 1, 7, 300, 301];
        long[] slots = [9, 3, 4, 0, 12];
        var (cos, sin) = rope.For(positions);
        var qkv = randn(n, (heads + 2 * kvHeads) * d, generator: new Generator(3));
        var keys = zeros(16, kvHeads, d);
        var values = zeros(16, kvHeads, d);

        var q = CpuLayerOps.RopeAndStore(qkv, cos, sin, keys, values, slots, heads, kvHeads, d);

        var c = cos.unsqueeze(1); var s = sin.unsqueeze(1);
        var expectedQ = RotaryEmbedding.Apply(qkv.narrow(1, 0, heads * d).view(n, heads, d), c, s);
        var expectedK = RotaryEmbedding.Apply(qkv.narrow(1, heads * d, kvHeads * d).view(n, kvHeads, d), c, s);
        var expectedV = qkv.narrow(1, (heads + kvHeads) * d, kvHeads * d).view(n, kvHeads, d);
        Assert.True(q.allclose(expectedQ, rtol: 1e-6, atol: 1e-6));
        var index = tensor(slots);
        Assert.True(keys.index_select(0, index).allclose(expectedK, rtol: 1e-6, atol: 1e-6));
        Assert.True(values.index_select(0, index).eq(expectedV).all().item<bool>());
        Assert.Equal(0, keys.index_select(0, tensor(new long[] { 1, 2, 5 })).abs().sum().item<float>()); // other slots untouched
    }
}
