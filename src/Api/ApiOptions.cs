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
    /// <summary>Most chat messages one request may carry.</summary>
    public int MaxMessages { get; set; } = 1024;
    /// <summary>Most characters of a prompt (or of all messages' content), checked before the tokenizer sees them.</summary>
    public int MaxPromptChars { get; set; } = 262_144;
    /// <summary>API keys, the admin key and each key's limits.</summary>
    public Security.SecurityOptions Security { get; set; } = new();
    /// <summary>On shutdown, how long running requests may take to finish before they are cancelled.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>Where alerts are POSTed as JSON; null: nowhere (they are still logged, counted and on the dashboard).</summary>
    public Uri? AlertWebhook { get; set; }
    /// <summary>Queue, tries and backoff of the webhook.</summary>
    public Dashboard.AlertWebhookOptions AlertWebhookLimits { get; set; } = new();
    /// <summary>How often the alert rules read the router's status (and so how soon an alert or a timeline entry shows).</summary>
    public TimeSpan AlertPollInterval { get; set; } = TimeSpan.FromMilliseconds(500);
    /// <summary>How long an out-of-memory or restart alert holds after the last one before it resolves.</summary>
    public TimeSpan AlertEventHold { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>How often an open <c>GET /events</c> stream sends the node's state when the client names no interval.</summary>
    public TimeSpan EventsInterval { get; set; } = TimeSpan.FromSeconds(1);
}
