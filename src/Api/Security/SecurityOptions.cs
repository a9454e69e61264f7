namespace ActorQuery.Api.Security;

/// <summary>Who may call the API and how much: API keys, the admin key, and each key's limits (0: unlimited).</summary>
public sealed class SecurityOptions
{
    /// <summary>Keys accepted on every endpoint but the open ones; empty: the API is open (the Host then listens on loopback only).</summary>
    public ApiKeySet ApiKeys { get; set; } = ApiKeySet.Empty;
    /// <summary>Keys accepted on /admin/* (and, like an API key, everywhere else); empty: /admin/* is closed.</summary>
    public ApiKeySet AdminKeys { get; set; } = ApiKeySet.Empty;
    /// <summary>Whether /metrics needs a key too (when keys are on).</summary>
    public bool MetricsAuth { get; set; }
    /// <summary>Generation requests a key may start per minute.</summary>
    public int RequestsPerMinute { get; set; }
    /// <summary>Completion tokens (each request's max tokens, counted when it is admitted) a key may ask for per minute.</summary>
    public int TokensPerMinute { get; set; }
    /// <summary>Generation requests of one key running at once.</summary>
    public int ConcurrentRequests { get; set; }
    /// <summary>The key this server sends to its worker processes' loopback API (they are given it as one of their API keys);
    /// null while keys are off.</summary>
    public string? WorkerProcessKey { get; set; }
    /// <summary>Retry-After of a refusal for concurrency, which has no window to wait for.</summary>
    public TimeSpan ConcurrencyRetryAfter { get; set; } = TimeSpan.FromSeconds(1);
}
