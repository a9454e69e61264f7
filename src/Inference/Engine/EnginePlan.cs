using ActorQuery.Contracts;
using ActorQuery.Inference.Memory;
using ActorQuery.Inference.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Engine;

/// <summary>
/// The memory a worker's engine loads within: its share of the node's budget (see <see cref="MemoryBudget"/>) and, when
/// the user fixed one, the KV pool's size. Null in <see cref="EngineOptions.Plan"/>: no plan (tools and tests), the pool
/// is <see cref="EngineOptions.KvCacheBytes"/> and stays virtual until used.
/// </summary>
/// <param name="BudgetTerms">Where the budget comes from, for the one-line error (<see cref="MemoryBudget.Describe"/>).</param>
/// <param name="ExplicitKvBytes">The user's <c>--kv-cache-size</c>; null: auto, all the budget leaves.</param>
public sealed record EnginePlan(long BudgetBytes, string BudgetTerms, long? ExplicitKvBytes);

/// <summary>
/// Measures the peak memory of the largest step the scheduler can form: max batch sequences, max tokens per step in all
/// (one prefill chunk and single decode tokens, every sequence sampling, so that the logits are as many rows as the
/// batch). It runs that step once on a scratch pool of its own and reads the process's peak resident size (host) or the
/// device's used bytes (CUDA, whose caching allocator keeps what the step took), so the plan holds what this build of
/// libtorch and these kernels really take, not an estimate.
/// </summary>
public static class ActivationProbe
{
    public static long Measure(Decoder decoder, int maxBatch, int maxTokensPerStep, int blockSize)
    {
        var w = decoder.Weights;
        int sequences = Math.Max(1, Math.Min(maxBatch, maxTokensPerStep));
        int first = Math.Max(1, maxTokensPerStep - (sequences - 1));
        int blocks = (first + blockSize - 1) / blockSize + (sequences - 1);
        using var pool = new KvBlockPool(w, blocks, blockSize, commit: true);
        var items = new List<BatchItem>(sequences);
        var rng = new Random(1);
        for (int i = 0; i < sequences; i++)
        {
            int n = i == 0 ? first : 1;
            var table = new KvBlockTable(pool.Allocator);
            if (!pool.Allocator.TryGrow(table, n)) throw new InvalidOperationException("activation probe: scratch pool too small");
            items.Add(new BatchItem(Enumerable.Range(0, n).Select(_ => rng.Next(w.Config.VocabSize)).ToArray(), table, true));
        }
        bool cuda = w.Device.type == DeviceType.CUDA;
        long before;
        if (cuda) before = CudaMemory.UsedBytes() ?? 0;
        else
        {
            NativeMemory.ResetPeakResident();
            before = NativeMemory.ResidentBytes();
        }
        long peakWhileHeld;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var logits = decoder.Forward(pool, items);
            using var host = logits?.cpu();
            peakWhileHeld = NativeMemory.ResidentBytes();
        }
        long after = cuda ? CudaMemory.UsedBytes() ?? 0 : NativeMemory.PeakResidentBytes() ?? peakWhileHeld;
        return Math.Max(0, Math.Max(after, cuda ? 0 : peakWhileHeld) - before);
    }
}

/// <summary>What <see cref="EnginePlanner.Choose"/> decided before loading: the dtype to load (auto resolved, or a
/// smaller format when the preferred one does not fit) and why.</summary>
public sealed record PlannedFormat(string Dtype, long WeightBytes, string Why);

/// <summary>A model's size in one format (<see cref="EnginePlanner.Footprint"/>).</summary>
public sealed record ModelFootprint(long WeightBytes, long KvBytesPerToken, int ContextLength, string WeightDtype);

/// <summary>
/// The plan's check before any weight is loaded, from config.json alone: the weights' exact bytes in each format
/// (<see cref="DecoderWeights.ByteSize(ModelConfig, ScalarType, ScalarType)"/>) plus the minimum KV pool (or the explicit
/// one) against a worker's share of the budget. A format that cannot fit is refused here, before the kernel would kill
/// the process while it loads; the activation peak is measured after loading (<see cref="ActivationProbe"/>) and
/// checked again there.
/// </summary>
public static class EnginePlanner
{
    public static PlannedFormat Choose(EngineOptions options, EnginePlan plan)
    {
        var folder = Path.GetFullPath(options.ModelPath);
        var config = Checkpoint.ModelConfig.Load(Path.Combine(folder, "config.json"));
        var device = DeviceAndDtype.ResolveDevice(options.Device);
        bool kernel = LayerOps.CpuKernelsAvailable(ScalarType.Float32, device);
        (ScalarType Compute, ScalarType Matrices) Resolve(string name) => DeviceAndDtype.ResolveDtypes(name, device, config.TorchDtype, kernel);
        string Format((ScalarType Compute, ScalarType Matrices) d) =>
            d.Compute == d.Matrices ? DeviceAndDtype.Name(d.Compute) : $"{DeviceAndDtype.Name(d.Matrices)} weights, {DeviceAndDtype.Name(d.Compute)} arithmetic";
        long Check(string name)
        {
            var d = Resolve(name);
            long weights = DecoderWeights.ByteSize(config, d.Compute, d.Matrices);
            long perToken = KvBlockPool.BytesPerToken(config, d.Compute);
            MemoryPlanner.KvBytes(plan.BudgetBytes, plan.BudgetTerms, weights, 0, 0,
                MemoryPlanner.MinimumKvBytes(perToken, config.MaxPositionEmbeddings), plan.ExplicitKvBytes,
                smallerFormat: DeviceAndDtype.SmallerFormat(d.Matrices, kernel));
            return weights;
        }

        bool auto = options.Dtype.Equals("auto", StringComparison.OrdinalIgnoreCase);
        if (!auto) return new PlannedFormat(options.Dtype, Check(options.Dtype), $"--dtype {options.Dtype}");
        var preferred = Resolve("auto");
        try
        {
            return new PlannedFormat("auto", Check("auto"), $"auto: {Format(preferred)} on this {DeviceName(device)}");
        }
        catch (MemoryPlanException tooBig) when (preferred.Matrices != ScalarType.BFloat16)
        {
            // The next smaller format: bfloat16 weights (float32 arithmetic where the CPU kernel runs, see
            // DeviceAndDtype.ResolveDtypes). Where that does not fit either, its refusal says what is left to try.
            // int8 changes the answers, so auto never picks it.
            long weights = Check("bfloat16");
            return new PlannedFormat("bfloat16", weights,
                $"auto: {Format(Resolve("bfloat16"))}, because {Format(preferred)} does not fit ({tooBig.Message})");
        }
    }

    /// <summary>What the model takes in the dtype <paramref name="options"/> asks for (auto resolved as <see cref="Choose"/>
    /// prefers it), from config.json alone: its weights' bytes, its KV bytes per token and its context length.</summary>
    public static ModelFootprint Footprint(EngineOptions options)
    {
        var config = Checkpoint.ModelConfig.Load(Path.Combine(Path.GetFullPath(options.ModelPath), "config.json"));
        var device = DeviceAndDtype.ResolveDevice(options.Device);
        var d = DeviceAndDtype.ResolveDtypes(options.Dtype, device, config.TorchDtype, LayerOps.CpuKernelsAvailable(ScalarType.Float32, device));
        return new ModelFootprint(DecoderWeights.ByteSize(config, d.Compute, d.Matrices), KvBlockPool.BytesPerToken(config, d.Compute),
            config.MaxPositionEmbeddings, DeviceAndDtype.Name(d.Matrices));
    }

    private static string DeviceName(Device d) => d.type switch { DeviceType.CPU => "CPU", DeviceType.CUDA => "CUDA device", _ => d.type.ToString() };
}
