namespace ActorQuery.Inference.Engine;

/// <summary>How <see cref="ModelLoader"/> loads a model and how much the engine may hold and run at once. The
/// defaults are the engine's own; the server and the CLI verbs set the fields they expose.</summary>
public sealed record EngineOptions
{
    /// <summary>A Hugging Face model folder (config.json + safetensors).</summary>
    public required string ModelPath { get; init; }
    /// <summary>The name workers report and clients send as <c>model</c>; null: the folder's name.</summary>
    public string? ServedName { get; init; }
    /// <summary>float32, bfloat16 or auto (see DeviceAndDtype.ResolveDtypes: bfloat16 where it is fast, that is CUDA,
    /// MPS and CPUs with AVX-512 BF16/AMX; on an AVX2 CPU a bfloat16 checkpoint keeps bf16 matrices under float32
    /// arithmetic; float32 elsewhere).</summary>
    public string Dtype { get; init; } = "auto";
    /// <summary>cpu, cuda, mps or auto (CUDA, then MPS, then CPU).</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Random weights of the config's shape instead of the checkpoint (benchmarks; no download).</summary>
    public bool DummyWeights { get; init; }
    /// <summary>Seed of the random weights, so that two dummy loads hold the same numbers.</summary>
    public long DummySeed { get; init; }
    /// <summary>Bytes of KV cache the engine holds for all sequences together, allocated once at load as a pool
    /// of blocks. Default 1 GiB.</summary>
    public long KvCacheBytes { get; init; } = 1L << 30;
    /// <summary>The memory plan to load within (the server's): the KV pool gets what the budget leaves after the weights,
    /// the load overhead and the measured activation peak, or the plan's explicit size, and is committed at load; a plan
    /// that does not fit throws <see cref="ActorQuery.Contracts.MemoryPlanException"/>. Null: <see cref="KvCacheBytes"/>, not committed.</summary>
    public EnginePlan? Plan { get; init; }
    /// <summary>Share of the planned (or configured) KV pool to allocate: 1, or less after the worker degraded.</summary>
    public double KvFraction { get; init; } = 1;
    /// <summary>Tokens per KV block (vLLM's default 16): the unit in which sequences take and return KV cache.</summary>
    public int KvBlockSize { get; init; } = 16;
    /// <summary>Automatic prefix caching: full KV blocks stay cached by the tokens they hold, and a sequence starts from
    /// the blocks of its longest cached prefix instead of prefilling it (see <see cref="Scheduler"/>). Default on; the
    /// server's --prefix-caching.</summary>
    public bool PrefixCaching { get; init; } = true;
    /// <summary>Sequences one step (one forward pass) advances; the scheduler keeps the others waiting, first come
    /// first served. Default 16, the server's --max-batch.</summary>
    public int MaxBatchSequences { get; init; } = ActorQuery.Contracts.EngineDefaults.MaxBatchSequences;
    /// <summary>Tokens one step feeds in all (decode tokens plus prefill chunks): longer prompts are prefilled
    /// in chunks so that running streams keep flowing. Default 64: on a CPU a step's time grows with its tokens
    /// once it holds more than a few, so the budget bounds how much longer a step with a prefill chunk is than a
    /// decode-only one (the inter-token latency p99 ÷ p50 of running streams); where libtorch multiplies (bfloat16,
    /// GPUs), 64 rows is also the largest batch that takes its faster W·xᵀ form (see TorchLayerOps.Linear).</summary>
    public int MaxTokensPerStep { get; init; } = 64;
    /// <summary>While sequences decode, a step carries at most this many prefill tokens per decode token (at least
    /// <see cref="Scheduler.MinPrefillChunk"/>, 32), within <see cref="MaxTokensPerStep"/>; 0 (default): no cap beyond
    /// that budget. On a CPU a step of more than a few rows is bound by arithmetic, so its time grows with its rows: 16
    /// decode tokens plus 48 prefill tokens made a step 4× a decode-only one, and running streams' inter-token latency
    /// p99 4× its p50 (HTTP bench, bf16); 2 kept it at 2.4–2.5×. It is off by default because it spreads prompts over
    /// more steps: with int8 weights 16 streams decoded 15% slower with it (engine bench, 128 + 64 tokens, alternating
    /// builds). A GPU's step costs about the same up to hundreds of rows, so there it would only delay first tokens.</summary>
    public int PrefillPerDecodeToken { get; init; }
    /// <summary>Compute threads; 0: one per core. float32 on an AVX2 CPU runs its layers on this many threads of the
    /// hand-written kernels (CpuKernelLayerOps) and gives libtorch one thread; elsewhere they are libtorch's
    /// intra-op threads (0 keeps libtorch's default).</summary>
    public int Threads { get; init; }
    /// <summary>The model's tokenizer: constrained decoding (<see cref="SamplingParams.Constraint"/>) walks its
    /// vocabulary's bytes. Null: constrained requests are refused.</summary>
    public ActorQuery.Tokenization.ITokenizer? Tokenizer { get; init; }
}
