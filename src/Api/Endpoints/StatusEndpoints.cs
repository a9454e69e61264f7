using ActorQuery.Actors;
using ActorQuery.Actors.Workers;
using Microsoft.Extensions.DependencyInjection;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Shutdown;

namespace ActorQuery.Api.Endpoints;

/// <summary>GET /health, /health/live, /health/ready, /memory and the index at /.</summary>
internal static class StatusEndpoints
{
    public static async Task<IResult> Health(IQueryClient client, IServedModel model, DrainGate gate, ApiOptions options,
        IServiceProvider services, CancellationToken ct)
    {
        RouterStatus status;
        try { status = await client.GetStatusAsync(options.StatusTimeout, ct); }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return Results.Json(new HealthResponse("unavailable", false, null, model.Name, gate.IsDraining, false, 0, 0, 0, 0, [],
                $"the router did not answer: {e.Message}"), ApiJson.Options, statusCode: 503);
        }
        bool shuttingDown = gate.IsDraining || status.ShuttingDown;
        bool serves = status.AnyWorkerReady || await PoolCanLoadAsync(services, options, ct);
        bool ready = serves && !shuttingDown && !status.Paused;
        string state = shuttingDown ? "shutting_down" : status.Paused ? "memory_pressure" : serves ? "ok" : "no_model_ready";
        var workers = status.Workers.Select(w => new WorkerHealth(w.Worker, w.Node, StateName(w.State), w.Model, w.Running, w.Queued,
            w.KvFreeTokens, w.KvCapacityTokens, w.Restarts, w.OomCount, w.LastOom, w.Degraded, w.DegradedReason, w.Error)).ToList();
        IReadOnlyList<WorkerProcessInfo>? processes = null;
        if (services.GetService<IWorkerProcessClient>() is { } supervisor)
        {
            try { processes = (await supervisor.GetAsync(options.StatusTimeout, ct)).Processes; }
            catch (Exception) when (!ct.IsCancellationRequested) { } // the rest of the health report still stands
        }
        var body = new HealthResponse(state, ready, status.Node, model.Name, gate.IsDraining, status.Paused,
            status.InFlight, status.Queued, status.MaxInFlight, status.MaxQueue, workers, PauseReason: status.PauseReason,
            WorkerProcesses: processes);
        return Results.Json(body, ApiJson.Options, statusCode: ready ? 200 : 503);
    }

    /// <summary>200 while the node can serve or recover; 503 when it has model workers (in this process or its worker
    /// processes) and none is ready, loading or restarting: every one failed for good (a model that cannot load, a hung
    /// step whose thread cannot be reclaimed, a worker process given up), so only a restart of the server helps. A router
    /// that does not answer in time is not taken as dead (it may be busy).</summary>
    public static async Task<IResult> Live(IQueryClient client, ApiOptions options, IServiceProvider services, CancellationToken ct)
    {
        try
        {
            var status = await client.GetStatusAsync(options.StatusTimeout, ct);
            var local = status.Workers.Where(w => w.Node == status.Node).ToList();
            IReadOnlyList<WorkerProcessInfo> processes = [];
            if (services.GetService<IWorkerProcessClient>() is { } supervisor)
                processes = (await supervisor.GetAsync(options.StatusTimeout, ct)).Processes;
            bool hasWorkers = local.Count > 0 || processes.Count > 0;
            bool canRecover = local.Any(w => w.State is WorkerState.Ready or WorkerState.Loading or WorkerState.Restarting or WorkerState.Draining)
                              || processes.Any(p => p.State != "failed");
            if (hasWorkers && !canRecover)
            {
                var reasons = local.Select(w => $"{w.Worker}: {w.Error ?? w.State.ToString()}")
                    .Concat(processes.Select(p => $"worker process {p.Id}: {p.Error}"));
                return Results.Json(new { status = "cannot_recover", reason = string.Join("; ", reasons) }, ApiJson.Options, statusCode: 503);
            }
        }
        catch (Exception) when (!ct.IsCancellationRequested) { } // busy, not dead
        return Results.Json(new { status = "alive" }, ApiJson.Options);
    }

    /// <summary>A model pool serves without a model loaded: it loads one when a query asks. It cannot while every model of it
    /// failed its last load (a later query tries again) or no pool answers.</summary>
    private static async Task<bool> PoolCanLoadAsync(IServiceProvider services, ApiOptions options, CancellationToken ct)
    {
        if (services.GetService<IModelPoolClient>() is not { } pool) return false;
        try { return (await pool.GetAsync(options.StatusTimeout, ct)).Models.Any(m => m.State != "failed"); }
        catch (Exception) when (!ct.IsCancellationRequested) { return false; }
    }

    public static async Task<IResult> Ready(IQueryClient client, DrainGate gate, ApiOptions options, IServiceProvider services, CancellationToken ct)
    {
        if (gate.IsDraining) return Results.Json(new { status = "shutting_down" }, ApiJson.Options, statusCode: 503);
        try
        {
            var status = await client.GetStatusAsync(options.StatusTimeout, ct);
            if (status.ShuttingDown) return Results.Json(new { status = "shutting_down" }, ApiJson.Options, statusCode: 503);
            // A paused node refuses every query with 503, so a load balancer should send them elsewhere until it resumes.
            if (status.Paused)
                return Results.Json(new { status = "memory_pressure", reason = status.PauseReason ?? "admission paused" }, ApiJson.Options, statusCode: 503);
            return status.AnyWorkerReady || await PoolCanLoadAsync(services, options, ct)
                ? Results.Json(new { status = "ready" }, ApiJson.Options)
                : Results.Json(new { status = "no_model_ready" }, ApiJson.Options, statusCode: 503);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return Results.Json(new { status = "unavailable", error = e.Message }, ApiJson.Options, statusCode: 503);
        }
    }

    public static async Task<IResult> Memory(IQueryClient client, ApiOptions options, IServiceProvider services, CancellationToken ct)
    {
        var status = await ActorAnswer.Or503("the router", () => client.GetStatusAsync(options.StatusTimeout, ct), ct);
        var report = MemoryReports.From(status);
        if (services.GetService<IWorkerProcessClient>() is { } processes)
            report = report with { WorkerProcesses = await WorkerProcessMemoryAsync(processes, options, ct) };
        return Results.Json(report, ApiJson.Options);
    }

    private static readonly HttpClient ProcessHttp = new();

    /// <summary>Each worker process's own /memory, read from its loopback HTTP API.</summary>
    internal static async Task<IReadOnlyList<WorkerProcessMemory>> WorkerProcessMemoryAsync(IWorkerProcessClient client, ApiOptions options,
        CancellationToken ct)
    {
        WorkerProcessesView view;
        try { view = await client.GetAsync(options.StatusTimeout, ct); }
        catch (Exception e) when (!ct.IsCancellationRequested) { return [new WorkerProcessMemory(0, null, "unknown", null, null, null, e.Message)]; }
        return await Task.WhenAll(view.Processes.Select(async p =>
        {
            if (p.Url is null || p.Pid is null) return new WorkerProcessMemory(p.Id, p.Pid, p.State, p.Url, p.ResidentBytes, null, $"worker process is {p.State}");
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                cts.CancelAfter(options.StatusTimeout);
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(p.Url), "/memory"));
                if (options.Security.WorkerProcessKey is { } key) request.Headers.Authorization = new("Bearer", key);
                using var reply = await ProcessHttp.SendAsync(request, cts.Token);
                var json = System.Text.Json.JsonDocument.Parse(await reply.Content.ReadAsStringAsync(cts.Token)).RootElement.Clone();
                return new WorkerProcessMemory(p.Id, p.Pid, p.State, p.Url, p.ResidentBytes, json, null);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                return new WorkerProcessMemory(p.Id, p.Pid, p.State, p.Url, p.ResidentBytes, null, e.Message);
            }
        }));
    }

    public static IResult Index(IServedModel model) => Results.Json(new IndexResponse("ActorQuery", model.Name, new Dictionary<string, string>
    {
        ["POST /query"] = "native generation: prompt or messages; stream: true for server-sent events",
        ["POST /v1/chat/completions"] = "OpenAI-compatible chat completions",
        ["POST /v1/completions"] = "OpenAI-compatible text completions",
        ["GET /v1/models"] = "the served model",
        ["GET /health"] = "status with every worker (503 when no model is ready, while memory pressure pauses admission, or shutting down)",
        ["GET /health/live"] = "liveness",
        ["GET /health/ready"] = "readiness (503 while no model is ready, while memory pressure pauses admission, or shutting down)",
        ["GET /memory"] = "this node's memory plan next to the watchdog's last reading, KV tokens, and each worker's memory",
        ["GET /cluster"] = "cluster members, roles, reachability and every worker's load",
        ["GET /metrics"] = "Prometheus metrics",
        ["GET /ui"] = "the dashboard (workers, memory plan, charts, timeline, cluster) and a chat playground",
        ["GET /events"] = "the dashboard's live feed (server-sent events)",
        ["GET /docs"] = "interactive API documentation",
        ["GET /openapi/v1.json"] = "OpenAPI document",
        ["POST /admin/drain"] = "admin key: stop admitting queries, as SIGTERM does, while the process keeps running",
        ["POST /admin/workers/{id}/recycle"] = "admin key: restart a worker process gracefully, its running queries resumed",
        ["POST /admin/cleanup"] = "admin key: the memory watchdog's cleanup now on every worker of this node, and what it freed",
        ["GET /admin/faults"] = "admin key: the faults armed on every worker of this node",
        ["POST /admin/faults"] = "admin key: arm or disarm fault injection on every worker of this node while it runs",
    }), ApiJson.Options);

    private static string StateName(WorkerState s) => s.ToString().ToLowerInvariant();
}
