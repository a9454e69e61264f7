using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization;

namespace ActorQuery.Inference.Engine;

/// <summary>
/// Loads the TorchSharp <see cref="InferenceEngine"/> for a worker, applying the degradation level: the KV-cache
/// bytes and the batch shrink with <see cref="EngineLoadSettings"/>, and the last rung moves the model to the CPU.
/// </summary>
public sealed class InferenceEngineFactory(EngineOptions options, ITokenizer? tokenizer = null) : IEngineFactory
{
    public IGenerationEngine Load(EngineLoadSettings settings) =>
        InferenceEngine.Load(options with
        {
            KvFraction = settings.KvBudgetFraction,
            MaxBatchSequences = Math.Max(1, Math.Min(options.MaxBatchSequences, settings.MaxBatch)),
            Device = settings.ForceCpu ? "cpu" : options.Device,
            Tokenizer = options.Tokenizer ?? tokenizer,
        });

    public ITokenizer? Tokenizer => tokenizer;

    /// <summary>A CPU fallback means something only when the model is not on the CPU already.</summary>
    public bool CanFallBackToCpu => !string.Equals(options.Device, "cpu", StringComparison.OrdinalIgnoreCase);
}
