using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace ActorQuery.Api.Generation;

/// <summary>
/// Server-sent events go out as slowly as the model (or the dashboard's interval) produces them, so Kestrel's minimum
/// response data rate, which protects against clients that read too slowly, would cut a healthy stream: streams opt out.
/// </summary>
internal static class SlowStreams
{
    public static void Allow(HttpContext context)
    {
        if (context.Features.Get<IHttpMinResponseDataRateFeature>() is { } rate) rate.MinDataRate = null;
    }
}
