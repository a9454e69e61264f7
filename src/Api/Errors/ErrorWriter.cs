using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace ActorQuery.Api.Errors;

/// <summary>
/// Writes an <see cref="ApiException"/> in the shape the caller's client understands: OpenAI's
/// <c>{"error":{message,type,param,code}}</c> under /v1 (so OpenAI SDKs surface the message), RFC 9457
/// problem+json with the request id everywhere else.
/// </summary>
public static class ErrorWriter
{
    public static bool IsOpenAiPath(PathString path) => path.StartsWithSegments("/v1");

    public static async Task WriteAsync(HttpContext context, ApiException error)
    {
        var response = context.Response;
        if (response.HasStarted) return; // streaming already began; the stream reports errors itself
        response.Clear();
        response.StatusCode = error.Status;
        if (error.RetryAfter is { } retry)
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        if (error.Challenge is { } challenge) response.Headers.WWWAuthenticate = challenge;
        RequestIdMiddleware.EnsureHeader(context);

        if (IsOpenAiPath(context.Request.Path))
        {
            await Results.Json(new OpenAiErrorEnvelope(new OpenAiError(error.Message, OpenAiType(error.Status), error.Field,
                    error.Code ?? DefaultCode(error.Status))), ApiJson.Options, statusCode: error.Status)
                .ExecuteAsync(context);
            return;
        }

        var extensions = new Dictionary<string, object?> { ["request_id"] = RequestIdMiddleware.Get(context) };
        if (error.Field is not null) extensions["field"] = error.Field;
        if (error.Code is not null) extensions["code"] = error.Code;
        await TypedResults.Problem(
                detail: error.Message,
                instance: context.Request.Path,
                statusCode: error.Status,
                title: ReasonPhrases.GetReasonPhrase(error.Status) is { Length: > 0 } p ? p : "Error",
                type: $"https://httpwg.org/specs/rfc9110.html#status.{error.Status}",
                extensions: extensions)
            .ExecuteAsync(context);
    }

    /// <summary>OpenAI's <c>error.type</c> values for the statuses we produce.</summary>
    internal static string OpenAiType(int status) => status switch
    {
        400 or 404 or 413 or 415 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        503 => "service_unavailable",
        504 => "timeout",
        _ => "server_error",
    };

    internal static string DefaultCode(int status) => status switch
    {
        400 => "invalid_value",
        401 => "invalid_api_key",
        403 => "forbidden",
        404 => "not_found",
        413 => "request_too_large",
        415 => "unsupported_media_type",
        429 => "queue_full",
        503 => "service_unavailable",
        504 => "deadline_exceeded",
        499 => "cancelled",
        _ => "internal_error",
    };
}

public sealed record OpenAiErrorEnvelope(OpenAiError Error);

public sealed record OpenAiError(string Message, string Type, string? Param, string? Code);
