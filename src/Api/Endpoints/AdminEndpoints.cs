using ActorQuery.Actors;
using ActorQuery.Actors.Workers;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Generation;
using ActorQuery.Api.Shutdown;
using ActorQuery.Contracts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ActorQuery.Api.Endpoints;

/// <summary>/admin/*: operations for whoever holds an admin key (the path policy is <see cref="Security.ApiKeyMiddleware"/>):
/// drain, restarting a worker process gracefully, the memory cleanup now, and faults armed at run time.</summary>
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
        var reply = await ActorAnswer.Or503("the worker process supervisor",
            () => client.RecycleAsync(id, "requested by POST /admin/workers/{id}/recycle", options.StatusTimeout, ct), ct);
        return reply switch
        {
            RecycleStarted s => Results.Json(new RecycleResponse("recycling", s.Process), ApiJson.Options, statusCode: 202),
            RecycleRefused { NotFound: true } r => throw new ApiException(404, "id", r.Reason, "not_found"),
            RecycleRefused r => throw new ApiException(409, "id", r.Reason, "conflict"),
            _ => throw new ApiException(503, null, $"unexpected reply {reply.GetType().Name}", "service_unavailable"),
        };
    }

    /// <summary>POST /admin/cleanup: what the memory watchdog does at its cleanup mark, now, on every worker of this node
    /// (in this process and in its worker processes), and the answer cache dropped.</summary>
    public static async Task<IResult> Cleanup(IServiceProvider services, ApiOptions options, ILoggerFactory logs, CancellationToken ct)
    {
        var admin = AdminClient(services);
        NodeCleanedUp done = await ActorAnswer.Or503("the node's query router", () => admin.CleanupAsync(options.StatusTimeout, ct), ct);
        var workers = done.Workers.OrderBy(w => w.Worker, StringComparer.Ordinal)
            .Select(w => new WorkerCleanup(w.Worker, w.Node, w.ProcessId, w.State, w.ResidentBeforeBytes, w.ResidentAfterBytes, w.FreedBytes,
                w.ManagedBeforeBytes, w.ManagedAfterBytes)).ToList();
        // Workers of one process share its resident bytes: the node freed what each process freed, counted once.
        long freed = workers.GroupBy(w => w.Pid).Sum(p => Math.Max(0, p.Max(w => w.ResidentBeforeBytes) - p.Min(w => w.ResidentAfterBytes)));
        logs.CreateLogger(typeof(AdminEndpoints).FullName!).LogInformation(
            "cleanup requested by POST /admin/cleanup: {Workers} worker(s), {Freed} freed, {Entries} cached answer(s) dropped",
            workers.Count, MemorySize.Format(freed), done.CacheEntriesDropped);
        Silent(done.Silent, "cleaned up", workers.Select(w => $"{w.Node}/{w.Worker}"));
        // The server process too: with worker processes it holds no model, but its request buffers, heaps and caches.
        long residentBefore = NativeMemory.ResidentBytes(), managedBefore = GC.GetTotalMemory(false);
        NativeMemory.CollectAndTrim();
        var server = new ProcessCleanup(Environment.ProcessId, residentBefore, NativeMemory.ResidentBytes(), managedBefore, GC.GetTotalMemory(false));
        return Results.Json(new CleanupResponse(done.Node, done.CacheEntriesDropped, freed, workers, server), ApiJson.Options);
    }

    /// <summary>GET /admin/faults: the faults armed on every worker of this node.</summary>
    public static async Task<IResult> GetFaults(IServiceProvider services, ApiOptions options, CancellationToken ct)
    {
        var admin = AdminClient(services);
        var faults = await ActorAnswer.Or503("the node's query router", () => admin.GetFaultsAsync(options.StatusTimeout, ct), ct);
        Silent(faults.Silent, "answered", faults.Workers.Select(w => $"{w.Node}/{w.Worker}"));
        return Results.Json(FaultsResponse(faults, null), ApiJson.Options);
    }

    /// <summary>POST /admin/faults: arms the body's faults on every worker of this node in place of those armed (a field left
    /// out is off, so <c>{}</c> disarms them all).</summary>
    public static async Task<IResult> ArmFaults(HttpContext context, IServiceProvider services, ApiOptions options, ILoggerFactory logs,
        CancellationToken ct)
    {
        var body = await FaultsRequest.ReadAsync(context, options);
        var admin = AdminClient(services);
        var live = new LiveFaults
        {
            LeakBytesPerStep = body.LeakBytesPerStep, StepDelayMs = body.StepDelayMs, OomEveryNthStep = body.OomEveryNthStep,
            CrashEveryNthStep = body.CrashEveryNthStep, HangAtStep = body.HangAtStep,
        };
        var faults = await ActorAnswer.Or503("the node's query router", () => admin.ArmFaultsAsync(live, options.StatusTimeout, ct), ct);
        logs.CreateLogger(typeof(AdminEndpoints).FullName!).LogWarning("faults {What} by POST /admin/faults on {Workers} worker(s){Faults}",
            live.Armed ? "armed" : "disarmed", faults.Workers.Count, live.Armed ? $": {live.Describe(hangFromNow: true)}" : "");
        Silent(faults.Silent, "armed them", faults.Workers.Select(w => $"{w.Node}/{w.Worker}"));
        return Results.Json(FaultsResponse(faults, body), ApiJson.Options);
    }

    private static FaultsResponse FaultsResponse(NodeFaults faults, FaultsBody? armed) =>
        new(faults.Node, armed, faults.Workers.OrderBy(w => w.Worker, StringComparer.Ordinal)
            .Select(w => new WorkerFaults(w.Worker, w.Node, w.ProcessId, w.Faults is { } f
                ? new FaultsBody(f.LeakBytesPerStep, f.StepDelayMs, f.OomEveryNthStep, f.CrashEveryNthStep, f.HangAtStep)
                : null, w.Steps, w.LeakedBytes)).ToList());

    private static INodeAdminClient AdminClient(IServiceProvider services) =>
        services.GetService<INodeAdminClient>()
        ?? throw new ApiException(503, null, "this server has no model workers to run admin operations on", "service_unavailable");

    /// <summary>A worker that stayed silent (a long step, a process going away) makes the answer a 503 that names it: the
    /// operation did not reach the whole node.</summary>
    private static void Silent(IReadOnlyList<string> silent, string what, IEnumerable<string> answered)
    {
        if (silent.Count == 0) return;
        var others = answered.ToList();
        throw new ApiException(503, null, $"worker(s) {string.Join(", ", silent)} did not answer in time; "
            + (others.Count == 0 ? "no worker " + what : $"{string.Join(", ", others)} {what}"), "service_unavailable");
    }
}

/// <param name="Status">"recycling": the process left the routing, its queries resume, and it restarts once it stopped.</param>
public sealed record RecycleResponse(string Status, WorkerProcessInfo Process);
