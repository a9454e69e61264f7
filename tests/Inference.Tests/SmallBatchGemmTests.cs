using ActorQuery.Inference.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Tests;

/// <summary>The hand-written float32 projection kernel (float32 or bfloat16 weights) agrees with libtorch and does not depend on the batch.</summary>
public sealed class SmallBatchGemmTests : IDisposable
{
    private readonly List<GemmTeam> _teams = new();

    /// <summary>A team of that many threads, stopped after the test (1: the calling thread alone).</summary>
    private GemmTeam Team(int threads)
    {
        var team = new GemmTeam(threads);
        _teams.Add(team);
        return team;
    }

    public void Dispose()
    {
        foreach (var t in _teams) t.Dispose();
    }

    public static TheoryData<int, int, int, bool, int> Shapes => new()
    {
        // rows, out, in, bias, threads: odd rows (the one-row tail), out not a multiple of 4 (the column tail),
        // in not a multiple of 8 (the scalar tail), and the real sizes of a Qwen2 projection.
        { 1, 896, 896, false, 1 },
        { 2, 1152, 896, true, 2 },
        { 3, 37, 19, true, 1 },
        { 16, 4864, 896, false, 2 },
        { 17, 896, 4864, false, 2 },
        { 64, 130, 64, true, 3 },
        { 150, 260, 72, true, 2 },        // more rows than one pass takes (ChunkRows)
        { 5, 3, 7, false, 2 },
        { 1, 10, 19, true, 2 },           // one row with the scalar tail
    };

    /// <summary>x [rows, in], a weight [out, in] and a bias [out] (or null) of unit normals.</summary>
    private static (Tensor X, Tensor W, Tensor? B) Inputs(int rows, int outFeatures, int inFeatures, bool hasBias, ulong seed)
    {
        var gen = new Generator(seed);
        var x = randn(rows, inFeatures, generator: gen);
        var w = randn(outFeatures, inFeatures, generator: gen);
        return (x, w, hasBias ? randn(outFeatures, generator: gen) : null);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Matches_libtorch_linear(int rows, int outFeatures, int inFeatures, bool hasBias, int threads)
    {
        if (!SmallBatchGemm.Supported) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var (x, w, b) = Inputs(rows, outFeatures, inFeatures, hasBias, seed: 7);
        var expected = nn.functional.linear(x, w, b).to(ScalarType.Float64);
        var got = SmallBatchGemm.Linear(x, w, b, Team(threads));
        Assert.Equal(new long[] { rows, outFeatures }, got.shape);
        // Sums of up to 4,864 products of unit normals: float32 rounding differs by order, not by more.
        double err = (got.to(ScalarType.Float64) - expected).abs().max().item<double>();
        double scale = expected.abs().max().item<double>();
        Assert.True(err <= 1e-5 * Math.Max(1, scale) * Math.Sqrt(inFeatures), $"max error {err} (scale {scale})");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void A_bfloat16_weight_gives_the_float32_result_of_its_widened_values_bit_for_bit(int rows, int outFeatures, int inFeatures, bool hasBias, int threads)
    {
        if (!SmallBatchGemm.Supported) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var (x, w32, b) = Inputs(rows, outFeatures, inFeatures, hasBias, seed: 5);
        var w = w32.to(ScalarType.BFloat16);
        var widened = SmallBatchGemm.Linear(x, w.to(ScalarType.Float32), b, Team(threads));
        var got = SmallBatchGemm.Linear(x, w, b, Team(threads));
        Assert.Equal(new long[] { rows, outFeatures }, got.shape);
        Assert.True(got.eq(widened).all().item<bool>(), $"max difference {(got - widened).abs().max().item<float>()}");
    }

    [Fact]
    public void Each_row_is_the_same_alone_or_in_a_batch_and_with_any_thread_count()
    {
        if (!SmallBatchGemm.Supported) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var gen = new Generator(11);
        var x = randn(16, 896, generator: gen);
        var w = randn(1152, 896, generator: gen);
        var b = randn(1152, generator: gen);
        var batch = SmallBatchGemm.Linear(x, w, b, Team(2));
        for (int i = 0; i < 16; i++)
        {
            var alone = SmallBatchGemm.Linear(x.narrow(0, i, 1), w, b, Team(1));
            Assert.True(alone.eq(batch.narrow(0, i, 1)).all().item<bool>(), $"row {i} differs alone");
        }
        Assert.True(SmallBatchGemm.Linear(x, w, b, Team(3)).eq(batch).all().item<bool>());

        // bfloat16 weights: one row alone (widened in registers) and the same row in a batch (through the buffer).
        var w16 = w.to(ScalarType.BFloat16);
        var batch16 = SmallBatchGemm.Linear(x, w16, b, Team(2));
        for (int i = 0; i < 16; i++)
            Assert.True(SmallBatchGemm.Linear(x.narrow(0, i, 1), w16, b, Team(1)).eq(batch16.narrow(0, i, 1)).all().item<bool>(), $"bf16 row {i} differs alone");
    }

    [Fact]
    public void A_team_runs_every_chunk_once_and_reports_a_failed_one()
    {
        using var team = new GemmTeam(3);
        for (int round = 0; round < 200; round++)       // many calls: a worker that missed a wake-up would hang here
        {
            var hits = new int[1 + round % 40];
            team.Run(hits.Length, c => Interlocked.Increment(ref hits[c]));
            Assert.All(hits, h => Assert.Equal(1, h));
        }
        // Two callers at once: the second runs its chunks on its own thread instead of waiting or mixing them.
        var a = new int[5000];
        var b = new int[5000];
        Parallel.Invoke(() => team.Run(a.Length, c => a[c]++), () => team.Run(b.Length, c => b[c]++));
        Assert.All(a.Concat(b), h => Assert.Equal(1, h));

        var e = Assert.ThrowsAny<Exception>(() => team.Run(100, c => { if (c == 57) throw new InvalidOperationException("chunk 57"); }));
        Assert.Contains("chunk 57", e.ToString());
        var after = new int[100];
        team.Run(after.Length, c => Interlocked.Increment(ref after[c]));  // the team still works after a failure
        Assert.All(after, h => Assert.Equal(1, h));
    }

    [Fact]
    public void Reads_a_non_contiguous_input_by_its_values()
    {
        if (!SmallBatchGemm.Supported) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var wide = randn(6, 2 * 40, generator: gen);
        var x = wide.narrow(1, 40, 40); // a view with a row stride of 80
        var w = randn(12, 40, generator: gen);
        var expected = nn.functional.linear(x.contiguous(), w);
        Assert.True(SmallBatchGemm.Linear(x, w, null, Team(2)).allclose(expected, rtol: 1e-5, atol: 1e-5));
    }
}
