namespace ActorQuery.Contracts;

/// <summary>
/// The KV cache a request can come to hold: every prompt token and every token it may generate. The router
/// refuses a query whose need exceeds the largest worker, the engine refuses a sequence whose need exceeds its
/// pool or the model's context and counts the need of those waiting in its queue against its free KV; all of them
/// count it here.
/// </summary>
public static class KvNeed
{
    /// <summary>KV-cache tokens a request of <paramref name="promptTokens"/> and up to <paramref name="maxNewTokens"/> needs at most.</summary>
    public static int Tokens(int promptTokens, int maxNewTokens) => promptTokens + maxNewTokens;

    /// <summary>The same in 64 bits, for checking values a client sent before they are known to fit an int.</summary>
    public static long Tokens(long promptTokens, long maxNewTokens) => promptTokens + maxNewTokens;

    /// <summary>KV-cache tokens <paramref name="request"/> needs at most.</summary>
    public static int Tokens(GenerationRequest request) => Tokens(request.PromptIds.Count, request.Sampling.MaxNewTokens);
}
