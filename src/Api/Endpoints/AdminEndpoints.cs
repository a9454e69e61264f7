using ActorQuery.Api.Shutdown;

namespace ActorQuery.Api.Endpoints;

/// <summary>/admin/*: operations for whoever holds an admin key (the path policy is <see cref="Security.ApiKeyMiddleware"/>).</summary>
internal static class AdminEndpoints
{
    /// <param name="Draining">Always true after the call: the node admits no new query until it restarts.</param>
    /// <param name="InFlight">Generation requests still running.</param>
    public sealed record DrainResponse(bool Draining, int InFlight);

    /// <summary>The same gate SIGTERM closes: readiness turns 503 and new queries get 503 "shutting down".</summary>
    public static IResult Drain(DrainGate gate)
    {
        gate.BeginDrain();
        return Results.Json(new DrainResponse(true, gate.Active), ApiJson.Options);
    }
}
