using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Model;
using ActorQuery.Contracts;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Tests;

/// <summary>
/// The plan's check before any weight loads, from config.json alone: the weight format that fits a worker's share, or a
/// refusal naming every term. Both CPU classes are taken here whatever this machine is (the float32 fallback exists only
/// where the CPU has no bf16 instructions and the hand-written kernel runs).
/// </summary>
[Collection(TorchGlobalState.Name)]
public sealed class EnginePlannerTests : IDisposable
{
    private static readonly string Folder = Fixtures.Dir("qwen2-tiny-f32");
    private static readonly ModelConfig Config = ModelConfig.Load(Path.Combine(Folder, "config.json"));
    private static readonly long Float32Weights = DecoderWeights.ByteSize(Config, ScalarType.Float32, ScalarType.Float32);
    private static readonly long Bf16Weights = DecoderWeights.ByteSize(Config, ScalarType.Float32, ScalarType.BFloat16);
    private static readonly long MinimumKv32 =
        MemoryPlanner.MinimumKvBytes(KvBlockPool.BytesPerToken(Config, ScalarType.Float32), Config.MaxPositionEmbeddings);

    public void Dispose() => DeviceAndDtype.AssumeFastBFloat16(null);

    private static EngineOptions Options(string dtype) => new() { ModelPath = Folder, Dtype = dtype, Device = "cpu" };

    [Fact]
    public void An_explicit_dtype_that_fits_is_kept_with_its_exact_weight_bytes()
    {
        var format = EnginePlanner.Choose(Options("float32"), new EnginePlan(Float32Weights + MinimumKv32, "test budget", null));

        Assert.Equal(("float32", Float32Weights, "--dtype float32"), (format.Dtype, format.WeightBytes, format.Why));
    }

    [Fact]
    public void An_explicit_dtype_that_does_not_fit_is_refused_before_loading_naming_every_term()
    {
        var e = Assert.Throws<MemoryPlanException>(() =>
            EnginePlanner.Choose(Options("float32"), new EnginePlan(Float32Weights, "cgroup limit 1.5 GiB x 0.9, less 264 MiB held", null)));

        Assert.StartsWith($"weights {MemorySize.Format(Float32Weights)} + minimum KV {MemorySize.Format(MinimumKv32)} > budget", e.Message);
        Assert.Contains("(cgroup limit 1.5 GiB x 0.9, less 264 MiB held)", e.Message);
        Assert.EndsWith("try --dtype bfloat16, a smaller model or a larger limit", e.Message);
    }

    [SkippableFact]
    public void Auto_on_a_cpu_without_bf16_falls_back_to_bfloat16_weights_when_float32_does_not_fit_and_says_why()
    {
        DeviceAndDtype.AssumeFastBFloat16(false);
        Skip.IfNot(LayerOps.CpuKernelsAvailable(ScalarType.Float32, torch.CPU), "bf16 weights under float32 arithmetic need the AVX2/FMA kernel");

        var fits = EnginePlanner.Choose(Options("auto"), new EnginePlan(Float32Weights + MinimumKv32, "test budget", null));
        Assert.Equal("auto", fits.Dtype);
        Assert.Equal(Float32Weights, fits.WeightBytes);

        var fallback = EnginePlanner.Choose(Options("auto"), new EnginePlan(Bf16Weights + MinimumKv32, "test budget", null));
        Assert.Equal(("bfloat16", Bf16Weights), (fallback.Dtype, fallback.WeightBytes));
        Assert.StartsWith("auto: bfloat16 weights, float32 arithmetic, because float32 does not fit (weights", fallback.Why);
    }

    [Fact]
    public void Auto_where_bfloat16_weights_do_not_fit_suggests_only_int8_and_only_on_the_cpu_kernel()
    {
        DeviceAndDtype.AssumeFastBFloat16(true);
        // bf16 matrices: under float32 arithmetic where the CPU kernel runs, bf16 arithmetic on libtorch elsewhere.
        var (compute, matrices) = DeviceAndDtype.ResolveDtypes("bfloat16", torch.CPU, Config.TorchDtype, LayerOps.CpuKernelsAvailable(ScalarType.Float32, torch.CPU));
        long need = DecoderWeights.ByteSize(Config, compute, matrices)
                    + MemoryPlanner.MinimumKvBytes(KvBlockPool.BytesPerToken(Config, compute), Config.MaxPositionEmbeddings);

        Assert.Equal(ScalarType.BFloat16, matrices);
        EnginePlanner.Choose(Options("auto"), new EnginePlan(need, "test budget", null));          // fits
        var e = Assert.Throws<MemoryPlanException>(() => EnginePlanner.Choose(Options("auto"), new EnginePlan(need - 1, "test budget", null)));
        Assert.EndsWith(LayerOps.CpuKernelsAvailable(ScalarType.Float32, torch.CPU)
            ? "try --dtype int8, a smaller model or a larger limit" : "try a smaller model or a larger limit", e.Message);
    }

    [Fact]
    public void An_explicit_kv_size_larger_than_what_fits_is_refused_with_what_would_fit()
    {
        var e = Assert.Throws<MemoryPlanException>(() =>
            EnginePlanner.Choose(Options("float32"), new EnginePlan(Float32Weights + (1 << 20), "test budget", ExplicitKvBytes: 1L << 30)));

        Assert.Contains("KV cache (--kv-cache-size) 1.0 GiB > budget", e.Message);
        Assert.EndsWith("at most 1 MiB fits: use --kv-cache-size auto or a smaller size", e.Message);
    }
}
