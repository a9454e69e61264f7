using ActorQuery.Actors.Workers;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Shutdown;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQuery.Api.Endpoints;

/// <summary>/admin/*: operations for whoever holds an admin key (the path policy is <see cref="Security.ApiKeyMiddleware"/>):
/// drain, and restarting a worker process gracefully.</summary>
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

    /// <summary>POST /admin/workers/{id}/recycle: restart a worker process gracefully, its running queries resumed.</summary>
    public static async Task<IResult> RecycleWorker(string id, IServiceProvider services, ApiOptions options, CancellationToken ct)
    {
        var client = services.GetService<IWorkerProcessClient>()
                     ?? throw new ApiException(404, "id", "this node runs its workers inside the server process (--worker-processes 0): "
                                                          + "there is no worker process to recycle", "not_found");
        object reply;
        try { reply = await client.RecycleAsync(id, "requested by POST /admin/workers/{id}/recycle", options.StatusTimeout, ct); }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            throw new ApiException(503, null, $"the worker process supervisor did not answer: {e.Message}", "service_unavailable");
        }
        return reply switch
        {
            RecycleStarted s => Results.Json(new RecycleResponse("recycling", s.Process), ApiJson.Options, statusCode: 202),
            RecycleRefused { NotFound: true } r => throw new ApiException(404, "id", r.Reason, "not_found"),
            RecycleRefused r => throw new ApiException(409, "id", r.Reason, "conflict"),
            _ => throw new ApiException(503, null, $"unexpected reply {reply.GetType().Name}", "service_unavailable"),
        };
    }
}

/// <param name="Status">"recycling": the process left the routing, its queries resume, and it restarts once it stopped.</param>
public sealed record RecycleResponse(string Status, WorkerProcessInfo Process);
