using System.Net.Http.Headers;
using ActorQuery.Api.Errors;

namespace ActorQuery.Api.Security;

/// <summary>
/// Who may call what, decided by path before any endpoint runs, so that a route added later is covered without a word:
/// <list type="bullet">
/// <item>open: <c>/health/live</c>, <c>/health/ready</c> (orchestrators' probes), <c>/metrics</c> unless
/// <see cref="SecurityOptions.MetricsAuth"/>, and the static pages <c>/ui</c>, <c>/docs</c> and <c>/openapi</c>, which carry
/// no data (the dashboard asks for the key and sends it with every call it makes);</item>
/// <item><c>/admin/*</c>: an admin key (401 without one, 403 with an API key, 403 when no admin key is configured);</item>
/// <item>everything else: an API or admin key when API keys are configured, else open.</item>
/// </list>
/// The key comes as <c>Authorization: Bearer KEY</c>; only <c>/events</c> also takes <c>?access_token=KEY</c>, because a
/// browser's EventSource cannot set headers. Generation requests are then admitted by the key's limits
/// (<see cref="KeyRateLimits"/>); refusals are <see cref="ApiException"/>s, so each is written in its endpoint's error shape.
/// </summary>
internal sealed class ApiKeyMiddleware(RequestDelegate next, ApiOptions options, KeyRateLimits limits)
{
    public const string QueryTokenParameter = "access_token";

    public async Task InvokeAsync(HttpContext context)
    {
        var security = options.Security;
        var path = context.Request.Path;
        ApiKey? key;
        if (path.StartsWithSegments("/admin"))
        {
            if (security.AdminKeys.IsEmpty)
                throw Forbidden("no admin key is configured (--admin-key or --admin-key-file), so /admin/* is closed");
            string presented = Presented(context, path) ?? throw Unauthorized(null);
            key = security.AdminKeys.Match(presented);
            if (key is null)
                throw security.ApiKeys.Match(presented) is not null ? Forbidden("this API key is not an admin key") : Unauthorized(presented);
        }
        else if (security.ApiKeys.IsEmpty || IsOpen(path, security))
        {
            await next(context);
            return;
        }
        else
        {
            string presented = Presented(context, path) ?? throw Unauthorized(null);
            key = security.ApiKeys.Match(presented) ?? security.AdminKeys.Match(presented) ?? throw Unauthorized(presented);
        }

        context.Items[typeof(ApiKey)] = key;
        if (context.GetEndpoint()?.Metadata.GetMetadata<GenerationEndpointMetadata>() is null)
        {
            await next(context);
            return;
        }
        using (limits.Admit(key)) await next(context);
    }

    private static bool IsOpen(PathString path, SecurityOptions security) =>
        path.Equals("/health/live", StringComparison.OrdinalIgnoreCase) || path.Equals("/health/ready", StringComparison.OrdinalIgnoreCase)
        || (!security.MetricsAuth && path.StartsWithSegments("/metrics"))
        || path.StartsWithSegments("/ui") || path.StartsWithSegments("/docs") || path.StartsWithSegments("/openapi");

    private static string? Presented(HttpContext context, PathString path)
    {
        if (AuthenticationHeaderValue.TryParse(context.Request.Headers.Authorization.ToString(), out var header)
            && header.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrWhiteSpace(header.Parameter))
            return header.Parameter.Trim();
        if (path.Equals("/events", StringComparison.OrdinalIgnoreCase)
            && context.Request.Query[QueryTokenParameter].ToString() is { Length: > 0 } token)
            return token;
        return null;
    }

    private static ApiException Unauthorized(string? presented) => presented is null
        ? new ApiException(401, null, "this server needs an API key: send the header 'Authorization: Bearer KEY'", "missing_api_key")
            { Challenge = "Bearer" }
        : new ApiException(401, null, "the API key is not valid", "invalid_api_key") { Challenge = "Bearer error=\"invalid_token\"" };

    private static ApiException Forbidden(string reason) => new(403, null, reason, "forbidden");
}
