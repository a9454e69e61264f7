using System.Net;

namespace ActorQuery.Api.Errors;

/// <summary>
/// A request the API answers with an error status. <see cref="Field"/> names the request field at fault (or
/// "body" / "Content-Type" for the envelope), so that a client can see what to fix.
/// </summary>
public sealed class ApiException(int status, string? field, string message, string? code = null, TimeSpan? retryAfter = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string? Field { get; } = field;
    /// <summary>Machine-readable code (OpenAI's <c>error.code</c>), e.g. <c>context_length_exceeded</c>.</summary>
    public string? Code { get; } = code;
    public TimeSpan? RetryAfter { get; } = retryAfter;
    /// <summary>The <c>WWW-Authenticate</c> header of a 401 (RFC 6750: <c>Bearer</c>, with the error when a key was sent).</summary>
    public string? Challenge { get; init; }

    public static ApiException BadRequest(string field, string reason) =>
        new((int)HttpStatusCode.BadRequest, field, $"{field}: {reason}", "invalid_value");
}

/// <summary>An answer the HTTP layer awaits from the actors, where no answer in time is the client's 503, not a 500.</summary>
internal static class ActorAnswer
{
    /// <summary>Awaits <paramref name="ask"/>; an exception (a timeout, an actor gone) becomes a 503 that says
    /// "<paramref name="who"/> did not answer" and why. The request's own cancellation passes through.</summary>
    public static async Task<T> Or503<T>(string who, Func<Task<T>> ask, CancellationToken ct)
    {
        try { return await ask(); }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            throw new ApiException(503, null, $"{who} did not answer: {e.Message}", "service_unavailable");
        }
    }
}
