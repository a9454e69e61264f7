using ActorQuery.Tokenization;

namespace ActorQuery.Contracts;

/// <summary>
/// How a worker should load its engine this time. Level 0 is the configuration as given; each degradation
/// level after repeated out-of-memory asks for less (the worker's supervisor decides the level).
/// </summary>
/// <param name="KvBudgetFraction">Fraction of the configured KV-cache budget to allocate (1, 0.5, 0.25, ...).</param>
/// <param name="MaxBatch">Most sequences to run at once.</param>
/// <param name="ForceCpu">Load on the CPU even if the configuration names a GPU (the last rung).</param>
public sealed record EngineLoadSettings(double KvBudgetFraction, int MaxBatch, bool ForceCpu, int DegradeLevel)
{
    public string Describe() =>
        $"KV budget {KvBudgetFraction * 100:0.#}%, batch {MaxBatch}{(ForceCpu ? ", CPU fallback" : "")}";
}

/// <summary>Loads engines for a worker. Called on the ModelActor's own (pinned) thread; may throw (an OOM is retried, anything else marks the worker failed).</summary>
public interface IEngineFactory
{
    IGenerationEngine Load(EngineLoadSettings settings);

    /// <summary>The tokenizer that turns tokens into text for streaming and stop strings; null: token ids only.</summary>
    ITokenizer? Tokenizer => null;

    /// <summary>True when the configured device is a GPU, so that a CPU fallback means something.</summary>
    bool CanFallBackToCpu => false;
}

/// <summary>An engine factory whose engines inject faults that can be armed while they run: a worker arms them on
/// request (POST /admin/faults reaches every worker of the node, in whatever process it runs).</summary>
public interface IFaultControl
{
    FaultState State { get; }
}

/// <summary>An <see cref="IEngineFactory"/> from a delegate (tests, simple hosts).</summary>
public sealed class DelegateEngineFactory(Func<EngineLoadSettings, IGenerationEngine> load, ITokenizer? tokenizer = null,
    bool canFallBackToCpu = false) : IEngineFactory
{
    public IGenerationEngine Load(EngineLoadSettings settings) => load(settings);
    public ITokenizer? Tokenizer => tokenizer;
    public bool CanFallBackToCpu => canFallBackToCpu;
}
