using Microsoft.AspNetCore.Http;

namespace ActorQuery.Api;

/// <summary>
/// Gives every request an id: the caller's <c>X-Request-Id</c> when it is a short token, else a new one. It is the
/// query id the actors see, appears in every error body and log line, and is echoed in the response header.
/// </summary>
public sealed class RequestIdMiddleware(RequestDelegate next)
{
    public const string Header = "X-Request-Id";
    private const string ItemKey = "actorquery.request_id";

    public Task InvokeAsync(HttpContext context)
    {
        string incoming = context.Request.Headers[Header].ToString();
        string id = IsUsable(incoming) ? incoming : "req-" + Guid.NewGuid().ToString("N")[..16];
        context.Items[ItemKey] = id;
        context.TraceIdentifier = id;
        context.Response.OnStarting(() => { EnsureHeader(context); return Task.CompletedTask; });
        return next(context);
    }

    public static string Get(HttpContext context) =>
        context.Items.TryGetValue(ItemKey, out var v) && v is string s ? s : context.TraceIdentifier;

    internal static void EnsureHeader(HttpContext context)
    {
        if (!context.Response.HasStarted) context.Response.Headers[Header] = Get(context);
    }

    private static bool IsUsable(string s) =>
        s.Length is > 0 and <= 64 && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');
}
