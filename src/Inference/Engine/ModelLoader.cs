using TorchSharp;
using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Memory;
using ActorQuery.Inference.Model;
using System.Diagnostics;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Engine;

/// <summary>What <see cref="ModelLoader.Load"/> gives the engine: the decoder (weights and its ops backend), the KV
/// pool allocated for it, the model's config and generation defaults, its name and how long loading took.</summary>
/// <param name="ActivationPeakBytes">The largest step's measured peak (0 without a plan).</param>
/// <param name="LoadOverheadBytes">What loading the weights took beyond their exact bytes (0 without a plan).</param>
public sealed record LoadedModel(Decoder Decoder, KvBlockPool Pool, ModelConfig Config, GenerationDefaults? Defaults,
    string Name, TimeSpan LoadTime, long ActivationPeakBytes = 0, long LoadOverheadBytes = 0);

/// <summary>
/// Loads a model for an engine: checks the options, reads config.json and generation_config.json, resolves the
/// device and dtypes, loads the checkpoint (or random weights of its shape), allocates the KV pool from the budget,
/// and chooses the decoder's ops backend and thread split for the device. Errors name the file and tensor.
/// </summary>
public static class ModelLoader
{
    public static LoadedModel Load(EngineOptions options)
    {
        if (options.KvCacheBytes <= 0) throw new ArgumentException("must be > 0", "kv_cache_bytes");
        if (options.KvFraction is <= 0 or > 1) throw new ArgumentException("must be in (0, 1]", "kv_fraction");
        if (options.MaxBatchSequences < 1) throw new ArgumentException("must be >= 1", "max_batch_sequences");
        if (options.MaxTokensPerStep < 1) throw new ArgumentException("must be >= 1", "max_tokens_per_step");
        if (options.PrefillPerDecodeToken < 0) throw new ArgumentException("must be >= 0", "prefill_per_decode_token");
        if (options.KvBlockSize is < 1 or > 1024) throw new ArgumentException("must be in [1, 1024]", "kv_block_size");
        if (options.Threads > 0) set_num_threads(options.Threads);
        var sw = Stopwatch.StartNew();
        var folder = Path.GetFullPath(options.ModelPath);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"model folder '{options.ModelPath}' not found");
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        var defaults = GenerationDefaults.Load(folder);
        var device = DeviceAndDtype.ResolveDevice(options.Device);
        // bf16 weight matrices under float32 arithmetic on CPUs without bf16 instructions: see ResolveDtypes.
        var (dtype, matrices) = DeviceAndDtype.ResolveDtypes(options.Dtype, device, config.TorchDtype,
            LayerOps.CpuKernelsAvailable(ScalarType.Float32, device));
        if (device.type == DeviceType.CUDA)
        {
            CudaMemory.Use(device.index);
            CudnnAttention.ApplyDefault();   // its per-call host cost made bfloat16 decoding 2.7× slower (see there)
        }
        bool onDevice = device.type != DeviceType.CPU;
        long UsedNow() => device.type == DeviceType.CUDA ? CudaMemory.UsedBytes() ?? 0 : NativeMemory.ResidentBytes();
        long usedBefore = UsedNow();
        DecoderWeights weights;
        if (options.DummyWeights) weights = DecoderWeights.Random(config, dtype, device, options.DummySeed, matrices);
        else
        {
            using var ckpt = new Checkpoint.Checkpoint(folder);
            weights = DecoderWeights.Load(ckpt, config, dtype, device, matrices);
        }
        long overhead = Math.Max(0, UsedNow() - usedBefore - weights.ByteSize());
        // float32 on an AVX2 CPU: the projections go through the hand-written kernel on its own threads, and
        // libtorch keeps one thread for the rest, so that its OpenMP workers (which spin between ops) do not
        // compete with the kernel's threads for the cores.
        int kernelThreads = 0;
        if (LayerOps.CpuKernelsAvailable(dtype, device))
        {
            kernelThreads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
            set_num_threads(1);
        }
        Decoder decoder;
        try { decoder = new Decoder(weights, kernelThreads); }
        catch { weights.Dispose(); throw; }
        KvBlockPool pool;
        long activations = 0;
        try
        {
            long kvBytes = options.KvCacheBytes;
            if (options.Plan is { } plan)
            {
                activations = ActivationProbe.Measure(decoder, options.MaxBatchSequences, options.MaxTokensPerStep, options.KvBlockSize);
                long perToken = KvBlockPool.BytesPerToken(config, dtype);
                kvBytes = MemoryPlanner.KvBytes(plan.BudgetBytes, plan.BudgetTerms, weights.ByteSize(), overhead, activations,
                    MemoryPlanner.MinimumKvBytes(perToken, config.MaxPositionEmbeddings), plan.ExplicitKvBytes,
                    MemoryPlanner.MaximumKvBytes(perToken, config.MaxPositionEmbeddings, options.MaxBatchSequences, options.KvBlockSize),
                    smallerFormat: DeviceAndDtype.SmallerFormat(weights.MatrixDtype, decoder.UsesCpuKernel));
            }
            else overhead = 0;
            kvBytes = Math.Max(1, (long)(kvBytes * options.KvFraction));
            pool = KvBlockPool.ForBudget(weights, kvBytes, options.KvBlockSize, commit: options.Plan is not null);
        }
        catch { decoder.Dispose(); throw; }
        return new LoadedModel(decoder, pool, config, defaults, string.IsNullOrEmpty(options.ServedName) ? Path.GetFileName(folder.TrimEnd('/')) : options.ServedName, sw.Elapsed, activations, overhead);
    }
}
