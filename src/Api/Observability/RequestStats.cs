using Microsoft.AspNetCore.Http;

namespace ActorQuery.Api.Observability;

/// <summary>
/// What a request did, filled in by the API as it runs and read by the one log line per request (the Host's
/// Serilog request logging) and by the metrics. Lives in <see cref="HttpContext.Features"/>.
/// </summary>
public sealed class RequestStats
{
    public int? PromptTokens { get; set; }
    public int? CompletionTokens { get; set; }
    public string? Worker { get; set; }
    public bool? Cached { get; set; }
    public string? FinishReason { get; set; }
    /// <summary>Why the request ended without an answer (refusal reason, timeout, failure, cancelled).</summary>
    public string? Outcome { get; set; }

    public static RequestStats For(HttpContext context)
    {
        var stats = context.Features.Get<RequestStats>();
        if (stats is null) { stats = new RequestStats(); context.Features.Set(stats); }
        return stats;
    }
}
