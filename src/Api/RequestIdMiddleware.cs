using Microsoft.AspNetCore.Http;

namespace ActorQuery.Api;

/// <summary>
/// Gives every request an id of the server's own ("req-" and 16 hex digits): the query id the actors see, in every error
/// body and log line. A caller's <c>X-Request-Id</c> (a short token) is echoed in the response header and logged beside
/// it, never used as the query's identity: two callers that send the same id (or one that reuses it) must not collide,
/// and one must not be able to cancel or be refused because of another's. Without one, the header carries the server's id.
/// </summary>
public sealed class RequestIdMiddleware(RequestDelegate next)
{
    public const string Header = "X-Request-Id";
    private const string ItemKey = "actorquery.request_id";
    private const string ClientKey = "actorquery.client_request_id";

    public Task InvokeAsync(HttpContext context)
    {
        string incoming = context.Request.Headers[Header].ToString();
        string id = "req-" + Guid.NewGuid().ToString("N")[..16];
        context.Items[ItemKey] = id;
        if (IsUsable(incoming)) context.Items[ClientKey] = incoming;
        context.TraceIdentifier = id;
        context.Response.OnStarting(() => { EnsureHeader(context); return Task.CompletedTask; });
        return next(context);
    }

    /// <summary>The server's id of this request (the query id).</summary>
    public static string Get(HttpContext context) =>
        context.Items.TryGetValue(ItemKey, out var v) && v is string s ? s : context.TraceIdentifier;

    /// <summary>The caller's X-Request-Id when it sent a usable one, else null.</summary>
    public static string? ClientId(HttpContext context) =>
        context.Items.TryGetValue(ClientKey, out var v) && v is string s ? s : null;

    internal static void EnsureHeader(HttpContext context)
    {
        if (!context.Response.HasStarted) context.Response.Headers[Header] = ClientId(context) ?? Get(context);
    }

    private static bool IsUsable(string s) =>
        s.Length is > 0 and <= 64 && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');
}
