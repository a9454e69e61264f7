using ActorQuery.Api.Errors;
using ActorQuery.Api.Observability;
using ActorQuery.Api.Shutdown;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace ActorQuery.Api;

/// <summary>Marks the endpoints that run a query (they are drained on shutdown and timed in the metrics).</summary>
public sealed class GenerationEndpointMetadata
{
    public static readonly GenerationEndpointMetadata Instance = new();
}

/// <summary>Counts every request in <c>actorquery_requests_total{endpoint,status}</c>, after its status is known.</summary>
internal sealed class RequestMetricsMiddleware(RequestDelegate next, ApiMetrics metrics)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try { await next(context); }
        finally
        {
            string endpoint = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
            int status = context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499 : context.Response.StatusCode;
            metrics.Requests.WithLabels(endpoint, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        }
    }
}

/// <summary>
/// Turns what went wrong into the answer the client's shape expects: <see cref="ApiException"/> as written by
/// <see cref="ErrorWriter"/>, a vanished client as 499 (nginx's "client closed request", only in logs and metrics),
/// anything else as 500 with the reason.
/// </summary>
internal sealed class ApiErrorMiddleware(RequestDelegate next, ILogger<ApiErrorMiddleware> logger)
{
    /// <summary>System.Text.Json's refusal to read a lone surrogate as text (an InvalidOperationException, possibly wrapped).</summary>
    private static bool IsLoneSurrogate(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is InvalidOperationException && x.Message.Contains("invalid UTF-16 JSON text", StringComparison.Ordinal)) return true;
        return false;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
            // Routing itself answers a body of the wrong media type with a bare 415 (the endpoints declare
            // application/json for the OpenAPI document); give it the same explained error as every other case.
            if (context.Response.StatusCode == 415 && !context.Response.HasStarted)
                throw new ApiException(415, "Content-Type",
                    $"Content-Type: must be application/json, got '{(string.IsNullOrEmpty(context.Request.ContentType) ? "(none)" : context.Request.ContentType)}'",
                    "unsupported_media_type");
        }
        catch (ApiException e)
        {
            if (e.Status >= 500) logger.LogWarning("Request {RequestId} failed: {Status} {Reason}", RequestIdMiddleware.Get(context), e.Status, e.Message);
            await ErrorWriter.WriteAsync(context, e);
        }
        catch (BadHttpRequestException e) when (!context.RequestAborted.IsCancellationRequested)
        {
            // Kestrel's own limits while reading the body (size, a client too slow to send it).
            await ErrorWriter.WriteAsync(context, new ApiException(e.StatusCode, "body", $"body: {e.Message}",
                ErrorWriter.DefaultCode(e.StatusCode)));
        }
        catch (Exception e) when (!context.Response.HasStarted && IsLoneSurrogate(e))
        {
            // A JSON text may carry a lone UTF-16 surrogate ("\udc00") anywhere, a property name included; reading it as
            // text fails wherever that happens. The fields that are read as text name themselves (PromptBuilder); this
            // catches the rest, so that it is the client's 400, not a 500.
            await ErrorWriter.WriteAsync(context, ApiException.BadRequest("body",
                "holds a lone UTF-16 surrogate (e.g. \\udc00) in a name or text the server reads: it is not Unicode text"));
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            RequestStats.For(context).Outcome ??= "client_disconnected";
            if (!context.Response.HasStarted) context.Response.StatusCode = 499;
        }
        catch (Exception e)
        {
            logger.LogError(e, "Request {RequestId} failed unexpectedly", RequestIdMiddleware.Get(context));
            if (context.Response.HasStarted) throw;
            await ErrorWriter.WriteAsync(context, new ApiException(500, null, $"internal error: {e.Message}", "internal_error"));
        }
    }
}

/// <summary>Refuses new queries with 503 once shutdown began; counts running ones so the drain can wait for them.</summary>
internal sealed class DrainMiddleware(RequestDelegate next, DrainGate gate, ApiMetrics metrics, ApiOptions options)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<GenerationEndpointMetadata>() is null)
        {
            await next(context);
            return;
        }
        if (!gate.TryEnter())
        {
            metrics.Refused.WithLabels("ShuttingDown").Inc();
            RequestStats.For(context).Outcome = "refused:ShuttingDown";
            throw new ApiException(503, null, "the server is shutting down", "shutting_down", options.DefaultRetryAfter);
        }
        try { await next(context); }
        finally { gate.Exit(); }
    }
}
