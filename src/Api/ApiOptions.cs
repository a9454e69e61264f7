namespace ActorQuery.Api;

/// <summary>Limits and defaults of the HTTP layer (the Host binds them from its options).</summary>
public sealed class ApiOptions
{
    /// <summary>Bodies above this get 413 before they are parsed.</summary>
    public long MaxBodyBytes { get; set; } = 1 << 20;
    /// <summary>New tokens when a request names none, capped by what is left of the context.</summary>
    public int DefaultMaxTokens { get; set; } = 256;
    /// <summary>How long /health, /memory and /metrics wait for the router's status.</summary>
    public TimeSpan StatusTimeout { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>Retry-After sent with 429/503 when the router gives none.</summary>
    public TimeSpan DefaultRetryAfter { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>Most stop strings one request may carry.</summary>
    public int MaxStopStrings { get; set; } = 16;
    /// <summary>On shutdown, how long running requests may take to finish before they are cancelled.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
