using ActorQuery.Actors;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Shutdown;

namespace ActorQuery.Api.Endpoints;

/// <summary>GET /health, /health/live, /health/ready, /memory and the index at /.</summary>
internal static class StatusEndpoints
{
    public static async Task<IResult> Health(IQueryClient client, IServedModel model, DrainGate gate, ApiOptions options, CancellationToken ct)
    {
        RouterStatus status;
        try { status = await client.GetStatusAsync(options.StatusTimeout, ct); }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return Results.Json(new HealthResponse("unavailable", false, null, model.Name, gate.IsDraining, false, 0, 0, 0, 0, [],
                $"the router did not answer: {e.Message}"), ApiJson.Options, statusCode: 503);
        }
        bool ready = status.AnyWorkerReady && !status.ShuttingDown && !gate.IsDraining;
        string state = gate.IsDraining || status.ShuttingDown ? "shutting_down" : status.AnyWorkerReady ? "ok" : "no_model_ready";
        var workers = status.Workers.Select(w => new WorkerHealth(w.Worker, w.Node, StateName(w.State), w.Model, w.Running, w.Queued,
            w.KvFreeTokens, w.KvCapacityTokens, w.Restarts, w.OomCount, w.LastOom, w.Degraded, w.DegradedReason, w.Error)).ToList();
        var body = new HealthResponse(state, ready, status.Node, model.Name, gate.IsDraining, status.Paused,
            status.InFlight, status.Queued, status.MaxInFlight, status.MaxQueue, workers);
        return Results.Json(body, ApiJson.Options, statusCode: ready ? 200 : 503);
    }

    public static IResult Live() => Results.Json(new { status = "alive" }, ApiJson.Options);

    public static async Task<IResult> Ready(IQueryClient client, DrainGate gate, ApiOptions options, CancellationToken ct)
    {
        if (gate.IsDraining) return Results.Json(new { status = "shutting_down" }, ApiJson.Options, statusCode: 503);
        try
        {
            var status = await client.GetStatusAsync(options.StatusTimeout, ct);
            if (status.ShuttingDown) return Results.Json(new { status = "shutting_down" }, ApiJson.Options, statusCode: 503);
            return status.AnyWorkerReady
                ? Results.Json(new { status = "ready" }, ApiJson.Options)
                : Results.Json(new { status = "no_model_ready" }, ApiJson.Options, statusCode: 503);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return Results.Json(new { status = "unavailable", error = e.Message }, ApiJson.Options, statusCode: 503);
        }
    }

    public static async Task<IResult> Memory(IQueryClient client, ApiOptions options, CancellationToken ct)
    {
        RouterStatus status;
        try { status = await client.GetStatusAsync(options.StatusTimeout, ct); }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            throw new ApiException(503, null, $"the router did not answer: {e.Message}", "service_unavailable");
        }
        var m = status.Memory;
        var report = m is null ? null : new MemoryReport(m.ResidentBytes, m.ManagedBytes, (m.WeightBytes + m.KvCacheBytes), m.DeviceBytes, m.LimitBytes,
            m.CleanupMark, m.PauseMark, (long)(m.LimitBytes * m.CleanupMark), (long)(m.LimitBytes * m.PauseMark),
            m.Cleanups, m.Pauses, m.Paused, m.At);
        var workers = status.Workers.Select(w => new WorkerMemory(w.Worker, w.Node, StateName(w.State), w.KvFreeTokens, w.KvCapacityTokens,
            w.OomCount, w.LastOom, w.Degraded, w.DegradedReason)).ToList();
        var c = status.Cache;
        return Results.Json(new MemoryResponse(status.Node, report, workers, new CacheReport(c.Entries, c.Bytes, c.Hits, c.Misses)), ApiJson.Options);
    }

    public static IResult Index(IServedModel model) => Results.Json(new IndexResponse("ActorQuery", model.Name, new Dictionary<string, string>
    {
        ["POST /query"] = "native generation: prompt or messages; stream: true for server-sent events",
        ["POST /v1/chat/completions"] = "OpenAI-compatible chat completions",
        ["POST /v1/completions"] = "OpenAI-compatible text completions",
        ["GET /v1/models"] = "the served model",
        ["GET /health"] = "status with every worker (503 when no model is ready)",
        ["GET /health/live"] = "liveness",
        ["GET /health/ready"] = "readiness (503 while no model is ready or shutting down)",
        ["GET /memory"] = "the memory watchdog's last reading per node and worker",
        ["GET /cluster"] = "cluster members, roles, reachability and every worker's load",
        ["GET /metrics"] = "Prometheus metrics",
        ["GET /docs"] = "interactive API documentation",
        ["GET /openapi/v1.json"] = "OpenAPI document",
    }), ApiJson.Options);

    private static string StateName(WorkerState s) => s.ToString().ToLowerInvariant();
}
