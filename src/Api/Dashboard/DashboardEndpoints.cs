using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Threading.Channels;
using ActorQuery.Actors;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Workers;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Endpoints;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Generation;
using ActorQuery.Api.Observability;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQuery.Api.Dashboard;

/// <summary>One worker on the dashboard.</summary>
/// <param name="Pid">The process the worker runs in, where it is this node's (workers run inside their node's process);
/// null for a worker of another node.</param>
public sealed record DashboardWorker(
    string Worker, string Node, string State, int? Pid, string? Model, string? Device, int Running, int Queued, int MaxBatch,
    int KvFreeTokens, int KvCapacityTokens, int Restarts, int OomCount, DateTimeOffset? LastOom, int Preemptions,
    bool Degraded, string? DegradedReason, int DegradeLevel, string? Error);

/// <summary>What <c>GET /events</c> sends as <c>event: state</c>, once a second: the node, its workers, its memory as
/// <c>GET /memory</c> shows it, the cluster, the last whole second of the charts and the alerts firing.</summary>
public sealed record DashboardState(
    DateTimeOffset Time, string Node, int Pid, string Model, string Status, bool Ready, bool Paused, string? PauseReason,
    int InFlight, int Queued, int MaxInFlight, int MaxQueue, IReadOnlyList<DashboardWorker> Workers, MemoryResponse? Memory,
    ClusterResponse? Cluster, SecondSample? Sample, IReadOnlyList<Alert> Alerts, string? Error);

/// <summary>What <c>GET /events</c> sends first, as <c>event: init</c>: the charts' last 10 minutes and the timeline so far.</summary>
public sealed record DashboardInit(string Model, IReadOnlyList<SecondSample> Series, IReadOnlyList<TimelineEntry> Timeline);

/// <summary>GET /ui (the dashboard and playground, files embedded in this assembly) and GET /events (its live feed).</summary>
internal static class DashboardEndpoints
{
    private static readonly Assembly Assembly = typeof(DashboardEndpoints).Assembly;

    /// <summary>The dashboard's files: name → (content type, embedded resource).</summary>
    private static readonly Dictionary<string, (string Type, string Resource)> Files = new(StringComparer.Ordinal)
    {
        ["index.html"] = ("text/html; charset=utf-8", "ActorQuery.Api.Dashboard.wwwroot.index.html"),
        ["dashboard.css"] = ("text/css; charset=utf-8", "ActorQuery.Api.Dashboard.wwwroot.dashboard.css"),
        ["dashboard.js"] = ("text/javascript; charset=utf-8", "ActorQuery.Api.Dashboard.wwwroot.dashboard.js"),
    };

    public const int MinIntervalMs = 250, MaxIntervalMs = 10_000;

    public static IResult Page() => File("index.html");

    public static IResult Asset(string file) =>
        Files.ContainsKey(file) ? File(file) : throw new ApiException(404, "file", $"file: /ui/{file} does not exist", "not_found");

    private static IResult File(string name)
    {
        var (type, resource) = Files[name];
        var stream = Assembly.GetManifestResourceStream(resource)
                     ?? throw new InvalidOperationException($"the embedded resource {resource} is missing from the build");
        return Results.Stream(stream, type);
    }

    public static async Task Events(HttpContext context, IQueryClient client, IServedModel model, ApiOptions options, ApiMetrics metrics,
        Timeline timeline, AlertMonitor monitor, IServiceProvider services)
    {
        var interval = ReadInterval(context.Request.Query["interval_ms"], options.EventsInterval);
        var ct = context.RequestAborted;
        var response = context.Response;
        response.ContentType = "text/event-stream";
        SlowStreams.Allow(context);
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no"; // nginx: do not hold the stream back

        // Entries added while the stream is open; subscribe before reading the history so that none falls in between.
        var added = Channel.CreateBounded<TimelineEntry>(new BoundedChannelOptions(Timeline.Capacity) { FullMode = BoundedChannelFullMode.DropOldest });
        using var subscription = timeline.Subscribe(e => added.Writer.TryWrite(e));
        var history = timeline.Recent();
        long lastId = history.Count > 0 ? history[^1].Id : 0;
        await WriteAsync(response, "init", new DashboardInit(model.Name, metrics.Seconds.Last(), history), ct);

        var view = services.GetService<IClusterViewClient>();
        try
        {
            var next = DateTimeOffset.UtcNow;
            while (!ct.IsCancellationRequested)
            {
                if (DateTimeOffset.UtcNow >= next)
                {
                    await WriteAsync(response, "state", await StateAsync(client, view, services.GetService<IWorkerProcessClient>(), model, options, metrics, monitor, ct), ct);
                    next = DateTimeOffset.UtcNow + interval;
                }
                var wait = next - DateTimeOffset.UtcNow;
                if (wait <= TimeSpan.Zero) continue;
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(wait);
                try
                {
                    while (await added.Reader.WaitToReadAsync(timeout.Token))
                        while (added.Reader.TryRead(out var entry))
                            if (entry.Id > lastId)
                            {
                                lastId = entry.Id;
                                await WriteAsync(response, "timeline", entry, ct);
                            }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { } // time for the next state
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { } // the client left
    }

    private static TimeSpan ReadInterval(Microsoft.Extensions.Primitives.StringValues raw, TimeSpan fallback)
    {
        if (raw.Count == 0) return fallback;
        if (raw.Count > 1 || !int.TryParse(raw[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int ms))
            throw ApiException.BadRequest("interval_ms", $"must be an integer number of milliseconds, got '{raw}'");
        if (ms is < MinIntervalMs or > MaxIntervalMs)
            throw ApiException.BadRequest("interval_ms", $"must be in [{MinIntervalMs}, {MaxIntervalMs}], got {ms}");
        return TimeSpan.FromMilliseconds(ms);
    }

    private static async Task<DashboardState> StateAsync(IQueryClient client, IClusterViewClient? view, IWorkerProcessClient? processes,
        IServedModel model, ApiOptions options,
        ApiMetrics metrics, AlertMonitor monitor, CancellationToken ct)
    {
        var sample = metrics.Seconds.Last(1) is [var s] ? s : null;
        RouterStatus status;
        try { status = await client.GetStatusAsync(options.StatusTimeout, ct); }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            return new DashboardState(DateTimeOffset.UtcNow, "", Environment.ProcessId, model.Name, "unavailable", false, false, null, 0, 0, 0, 0,
                [], null, null, sample, monitor.Firing, $"the router did not answer: {e.Message}");
        }
        ClusterResponse? cluster = null;
        if (view is not null)
        {
            try { cluster = ClusterEndpoints.FromView(await view.GetViewAsync(options.StatusTimeout, ct)); }
            catch (Exception) when (!ct.IsCancellationRequested) { } // shown as unknown until the next answer
        }
        string state = status.ShuttingDown ? "shutting_down" : status.Paused ? "memory_pressure" : status.AnyWorkerReady ? "ok" : "no_model_ready";
        // With worker processes the model's memory is the process's: its own report (one process), and each worker's pid.
        var memory = MemoryReports.From(status);
        var pids = new Dictionary<string, int>(StringComparer.Ordinal);
        if (processes is not null)
        {
            var perProcess = await StatusEndpoints.WorkerProcessMemoryAsync(processes, options, ct);
            foreach (var p in perProcess)
                if (p.Pid is { } pid && p.Memory is { } m)
                    foreach (var w in m.GetProperty("workers").EnumerateArray())
                        pids[w.GetProperty("worker").GetString()!] = pid;
            if (perProcess is [{ Memory: { } only }]) memory = only.Deserialize<MemoryResponse>(ApiJson.Options) ?? memory;
        }
        var workers = status.Workers.Select(w => new DashboardWorker(w.Worker, w.Node, w.State.ToString().ToLowerInvariant(),
            pids.TryGetValue(w.Worker, out int workerPid) ? workerPid : processes is null && w.Node == status.Node ? Environment.ProcessId : null, w.Model, w.Device, w.Running, w.Queued, w.MaxBatch, w.KvFreeTokens,
            w.KvCapacityTokens, w.Restarts, w.OomCount, w.LastOom, w.Preemptions, w.Degraded, w.DegradedReason, w.DegradeLevel, w.Error)).ToList();
        return new DashboardState(DateTimeOffset.UtcNow, status.Node, Environment.ProcessId, model.Name, state, state == "ok", status.Paused,
            status.PauseReason, status.InFlight, status.Queued, status.MaxInFlight, status.MaxQueue, workers, memory,
            cluster, sample, monitor.Firing, null);
    }

    private static async Task WriteAsync<T>(HttpResponse response, string name, T data, CancellationToken ct)
    {
        string json = JsonSerializer.Serialize(data, ApiJson.Options);
        await response.WriteAsync($"event: {name}\ndata: {json}\n\n", ct);
        await response.Body.FlushAsync(ct);
    }
}
