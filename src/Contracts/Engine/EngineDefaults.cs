namespace ActorQuery.Contracts;

/// <summary>Defaults that the engine, the workers and the server's settings share, so that each layer starts from one value.</summary>
public static class EngineDefaults
{
    /// <summary>Most sequences one engine advances per forward pass (the server's <c>--max-batch</c>).</summary>
    public const int MaxBatchSequences = 16;
}
