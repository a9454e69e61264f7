using ActorQuery.Inference.Model;
using TorchSharp;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Tests;

/// <summary>The hand-written float32 projection kernel (float32, bfloat16 or int8 weights), on 256-bit (AVX2) and, where
/// the CPU has them, 512-bit (AVX-512) vectors, agrees with libtorch and does not depend on the batch.</summary>
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

    private static readonly (int Rows, int Out, int In, bool Bias, int Threads)[] ShapeList =
    [
        // rows, out, in, bias, threads: odd rows (the one-row tail), out not a multiple of 4 (the column tail),
        // in not a multiple of 8 or 16 (the scalar tail; int8 then takes one scale per row), and the real sizes of a Qwen2 projection.
        (1, 896, 896, false, 1),
        (2, 1152, 896, true, 2),
        (3, 37, 19, true, 1),
        (16, 4864, 896, false, 2),
        (17, 896, 4864, false, 2),
        (64, 130, 64, true, 3),
        (150, 260, 72, true, 2),        // more rows than one pass takes (ChunkRows)
        (5, 3, 7, false, 2),
        (1, 10, 19, true, 2),           // one row with the scalar tail
        (1, 12, 40, true, 2),           // one row, in a multiple of 8 but not of 16: direct on AVX2 only
    ];

    /// <summary>The vector widths this CPU runs: 256-bit always, 512-bit where it has AVX-512F.</summary>
    public static bool[] Widths => Avx512F.IsSupported ? [false, true] : [false];

    /// <summary>Every shape on every vector width.</summary>
    public static TheoryData<int, int, int, bool, int, bool> Shapes
    {
        get
        {
            var data = new TheoryData<int, int, int, bool, int, bool>();
            foreach (var wide in Widths)
                foreach (var (rows, outFeatures, inFeatures, bias, threads) in ShapeList) data.Add(rows, outFeatures, inFeatures, bias, threads, wide);
            return data;
        }
    }

    public static TheoryData<bool> WidthData
    {
        get { var d = new TheoryData<bool>(); foreach (var w in Widths) d.Add(w); return d; }
    }

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
    public void Matches_libtorch_linear(int rows, int outFeatures, int inFeatures, bool hasBias, int threads, bool wide)
    {
        if (!SmallBatchGemm.Supported) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var (x, w, b) = Inputs(rows, outFeatures, inFeatures, hasBias, seed: 7);
        var expected = nn.functional.linear(x, w, b).to(ScalarType.Float64);
        var got = SmallBatchGemm.Linear(x, w, b, Team(threads), wide);
        Assert.Equal(new long[] { rows, outFeatures }, got.shape);
        // Sums of up to 4,864 products of unit normals: float32 rounding differs by order, not by more.
        double err = (got.to(ScalarType.Float64) - expected).abs().max().item<double>();
        double scale = expected.abs().max().item<double>();
        Assert.True(err <= 1e-5 * Math.Max(1, scale) * Math.Sqrt(inFeatures), $"max error {err} (scale {scale})");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void A_bfloat16_weight_gives_the_float32_result_of_its_widened_values_bit_for_bit(int rows, int outFeatures, int inFeatures, bool hasBias, int threads, bool wide)
    {
        if (!SmallBatchGemm.Supported) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var (x, w32, b) = Inputs(rows, outFeatures, inFeatures, hasBias, seed: 5);
        var w = w32.to(ScalarType.BFloat16);
        var widened = SmallBatchGemm.Linear(x, w.to(ScalarType.Float32), b, Team(threads), wide);
        var got = SmallBatchGemm.Linear(x, w, b, Team(threads), wide);
        Assert.Equal(new long[] { rows, outFeatures }, got.shape);
        Assert.True(got.eq(widened).all().item<bool>(), $"max difference {(got - widened).abs().max().item<float>()}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void An_int8_weight_gives_the_float32_result_of_its_dequantized_values_bit_for_bit(int rows, int outFeatures, int inFeatures, bool hasBias, int threads, bool wide)
    {
        if (!SmallBatchGemm.Supported) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var (x, w32, b) = Inputs(rows, outFeatures, inFeatures, hasBias, seed: 9);
        var q = Int8Matrix.Quantize(w32, tiles: false);
        var dequantized = Int8Matrix.Dequantize(q, inFeatures);
        var expected = SmallBatchGemm.Linear(x, dequantized, b, Team(threads), wide);
        var got = SmallBatchGemm.Linear(x, q, b, Team(threads), wide);
        Assert.Equal(new long[] { rows, outFeatures }, got.shape);
        Assert.True(got.eq(expected).all().item<bool>(), $"max difference {(got - expected).abs().max().item<float>()}");
    }

    private static readonly (int Rows, int Out, int In, bool Bias, int Threads)[] TileShapeList =
    [
        // rows, out, in, bias, threads: out a multiple of 8 and in of 32 (what the tiles take); an odd number of tiles
        // (the last one alone), rows not a multiple of 4 (rows one at a time), more rows than one pass takes, and the
        // real sizes of a Qwen2 projection.
        (1, 896, 896, false, 1),
        (2, 1152, 896, true, 2),
        (16, 4864, 896, false, 2),
        (17, 896, 4864, false, 2),
        (64, 136, 64, true, 3),
        (150, 264, 96, true, 2),
        (5, 8, 32, false, 2),
        (1, 24, 64, true, 2),
    ];

    public static TheoryData<int, int, int, bool, int> TileShapes
    {
        get
        {
            var data = new TheoryData<int, int, int, bool, int>();
            foreach (var (rows, outFeatures, inFeatures, bias, threads) in TileShapeList) data.Add(rows, outFeatures, inFeatures, bias, threads);
            return data;
        }
    }

    /// <summary>The tiled kernel against its definition, computed here one element at a time: the rows of x quantized
    /// per group of 32, each group's exact integer dot product with the weight's bytes, added in float32 as
    /// fma(dot, s_w·s_x, acc) group by group, then the bias.</summary>
    [Theory]
    [MemberData(nameof(TileShapes))]
    public unsafe void An_int8_weight_in_tiles_gives_its_definition_bit_for_bit_and_stays_near_float(int rows, int outFeatures, int inFeatures, bool hasBias, int threads)
    {
        if (!System.Runtime.Intrinsics.X86.AvxVnni.IsSupported) return; // the tiles need AVX-VNNI (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var (x, w32, b) = Inputs(rows, outFeatures, inFeatures, hasBias, seed: 21);
        var tiled = Int8Matrix.Quantize(w32, tiles: true);
        Assert.True(Int8Matrix.IsTiled(tiled, inFeatures));
        Assert.Equal(outFeatures, Int8Matrix.Columns(tiled, inFeatures));
        var got = SmallBatchGemm.Linear(x, tiled, b, Team(threads));
        Assert.Equal(new long[] { rows, outFeatures }, got.shape);

        var rowsLayout = Int8Matrix.Quantize(w32, tiles: false);
        int groups = inFeatures / 32;
        var qx = Int8TileGemm.Quantize(TensorData.Floats(x), rows, inFeatures);
        var expected = new float[rows * outFeatures];
        sbyte* wq = TensorData.Bytes(rowsLayout);
        long rowBytes = Int8Matrix.RowBytes(inFeatures);
        float* bias = b is null ? null : TensorData.Floats(b);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < outFeatures; j++)
            {
                sbyte* wr = wq + j * rowBytes;
                float* ws = (float*)(wr + inFeatures);
                float acc = 0;
                for (int g = 0; g < groups; g++)
                {
                    int dot = 0;
                    for (int i = 32 * g; i < 32 * g + 32; i++) dot += wr[i] * qx.Row(r)[i];
                    acc = MathF.FusedMultiplyAdd(dot, ws[g] * qx.ScalesOf(r)[g], acc);
                }
                expected[r * outFeatures + j] = bias == null ? acc : acc + bias[j];
            }
        var want = tensor(expected).reshape(rows, outFeatures);
        Assert.True(got.eq(want).all().item<bool>(), $"max difference {(got - want).abs().max().item<float>()}");

        // Against float64 on the weight's own values: what quantizing x costs, about a 254th of each group's largest
        // value per product, summed with random signs.
        var reference = nn.functional.linear(x.to(ScalarType.Float64), Int8Matrix.Dequantize(rowsLayout, inFeatures).to(ScalarType.Float64), b?.to(ScalarType.Float64));
        double err = (got.to(ScalarType.Float64) - reference).abs().max().item<double>();
        double bound = 3.0 / 254 * Math.Sqrt(inFeatures) * 3;   // unit normals: |x| rarely above 3, |w| a step of 1/127 of ~3
        Assert.True(err < bound, $"max error {err} against {bound}");
    }

    [Fact]
    public void Rows_and_tiles_hold_the_same_values_and_a_tiled_embedding_looks_up_the_same_rows()
    {
        using var scope = NewDisposeScope();
        var w = randn(24, 96, generator: new Generator(3)) * 2;
        w[9].zero_();
        var rowsLayout = Int8Matrix.Quantize(w, tiles: false);
        var tiled = Int8Matrix.Quantize(w, tiles: true);
        Assert.Equal(new long[] { 3, 9 * 96 }, tiled.shape);
        Assert.Equal(rowsLayout.NumberOfElements, tiled.NumberOfElements);   // the same bytes: the memory plan holds for both
        Assert.True(Int8Matrix.Dequantize(tiled, 96).eq(Int8Matrix.Dequantize(rowsLayout, 96)).all().item<bool>());
        Assert.True(Int8Matrix.Rows(tiled, 96, [9, 23, 0]).eq(Int8Matrix.Rows(rowsLayout, 96, [9, 23, 0])).all().item<bool>());
        Assert.Throws<ArgumentOutOfRangeException>(() => Int8Matrix.Rows(tiled, 96, [24]));
        // Shapes the tiles do not take stay in rows.
        Assert.False(Int8Matrix.IsTiled(Int8Matrix.Quantize(randn(12, 96), tiles: true), 96));
        Assert.False(Int8Matrix.IsTiled(Int8Matrix.Quantize(randn(16, 72), tiles: true), 72));
    }

    [Fact]
    public void Int8_quantization_stays_within_half_a_step_of_each_group_and_keeps_zeros()
    {
        using var scope = NewDisposeScope();
        foreach (int k in new[] { 896, 72, 19 })   // groups of 32; 72 and 19 are not multiples of 32: one scale per row
        {
            var w = randn(9, k, generator: new Generator(4)) * 3;
            w[2].zero_();                               // an all-zero row: scale 0, values 0, no NaN
            var q = Int8Matrix.Quantize(w, tiles: false);
            Assert.Equal(new long[] { 9, Int8Matrix.RowBytes(k) }, q.shape);
            var back = Int8Matrix.Dequantize(q, k);
            int g = Int8Matrix.GroupFor(k);
            Assert.Equal(k % 32 == 0 ? 32 : k, g);
            var groups = w.reshape(9, k / g, g);
            var step = groups.abs().amax([2], keepdim: true) / 127;      // each group's scale
            var err = (back.reshape(9, k / g, g) - groups).abs();
            Assert.True(err.le(step * 0.5 + 1e-6).all().item<bool>(), $"k {k}: an error above half a step");
            Assert.True(back[2].eq(0).all().item<bool>());
            Assert.False(back.isnan().any().item<bool>());
            Assert.True(back.index_select(0, tensor(new long[] { 5, 0 })).eq(Int8Matrix.Rows(q, k, [5, 0])).all().item<bool>());
        }
    }

    [Theory]
    [MemberData(nameof(WidthData))]
    public void Every_weight_format_on_either_vector_width_agrees_with_libtorch_on_its_own_values(bool wide)
    {
        if (!SmallBatchGemm.Supported) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var (x, w32, b) = Inputs(5, 1152, 896, true, seed: 13);
        foreach (var (weight, values) in new[]
                 {
                     (w32, w32), (w32.to(ScalarType.BFloat16), w32.to(ScalarType.BFloat16).to(ScalarType.Float32)),
                     (Int8Matrix.Quantize(w32, tiles: false), Int8Matrix.Dequantize(Int8Matrix.Quantize(w32, tiles: false), 896)),
                 })
        {
            var expected = nn.functional.linear(x.to(ScalarType.Float64), values.to(ScalarType.Float64), b!.to(ScalarType.Float64));
            var got = SmallBatchGemm.Linear(x, weight, b, Team(2), wide).to(ScalarType.Float64);
            double err = (got - expected).abs().max().item<double>();
            Assert.True(err < 1e-3, $"{weight.dtype}: max error {err}");
        }
    }

    [Theory]
    [MemberData(nameof(WidthData))]
    public void Each_row_is_the_same_alone_or_in_a_batch_and_with_any_thread_count(bool wide)
    {
        if (!SmallBatchGemm.Supported) return; // not used without AVX2+FMA (xunit 2 has no runtime skip)
        using var scope = NewDisposeScope();
        var gen = new Generator(11);
        var x = randn(16, 896, generator: gen);
        var w32 = randn(1152, 896, generator: gen);
        var b = randn(1152, generator: gen);
        // float32, bfloat16 and int8 weights: one row alone (read in registers) and the same row in a batch (bf16 and
        // int8 through the widening buffer); int8 in tiles where the CPU has AVX-VNNI (one row and four at a time).
        var formats = new List<Tensor> { w32, w32.to(ScalarType.BFloat16), Int8Matrix.Quantize(w32, tiles: false) };
        if (System.Runtime.Intrinsics.X86.AvxVnni.IsSupported) formats.Add(Int8Matrix.Quantize(w32, tiles: true));
        foreach (var w in formats)
        {
            var batch = SmallBatchGemm.Linear(x, w, b, Team(2), wide);
            for (int i = 0; i < 16; i++)
            {
                var alone = SmallBatchGemm.Linear(x.narrow(0, i, 1), w, b, Team(1), wide);
                Assert.True(alone.eq(batch.narrow(0, i, 1)).all().item<bool>(), $"{w.dtype} row {i} differs alone");
            }
            Assert.True(SmallBatchGemm.Linear(x, w, b, Team(3), wide).eq(batch).all().item<bool>(), $"{w.dtype}: 3 threads differ");
        }
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
