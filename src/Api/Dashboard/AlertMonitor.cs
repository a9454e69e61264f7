using ActorQuery.Actors;
using ActorQuery.Actors.Cluster;
using ActorQuery.Api.Observability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ActorQuery.Api.Dashboard;

/// <summary>
/// Reads the router's status (and the cluster view, where clustering is on) every <see cref="ApiOptions.AlertPollInterval"/>,
/// runs the <see cref="AlertRules"/> over it, and makes each alert that fires or resolves a structured log event, a count
/// in <c>actorquery_alerts_total{kind}</c> (firings), a timeline entry and, when a webhook is set, a POST. Occurrences
/// (out-of-memory errors, restarts, state changes) go on the timeline. It lives in the API, over <see cref="IQueryClient"/>,
/// so that it sees exactly what /health and /memory show.
/// </summary>
public sealed class AlertMonitor(IQueryClient client, IServiceProvider services, ApiOptions options, ApiMetrics metrics, Timeline timeline,
    ILogger<AlertMonitor> logger, TimeProvider? clock = null) : BackgroundService
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly AlertRules _rules = new(options.AlertEventHold);
    private readonly Lock _lock = new();
    private AlertWebhook? _webhook;
    private bool _routerLost;

    /// <summary>The alerts firing now, for the dashboard.</summary>
    public IReadOnlyList<Alert> Firing
    {
        get { lock (_lock) return _rules.Firing.ToList(); }
    }

    /// <summary>The webhook, when one is set.</summary>
    public AlertWebhook? Webhook => _webhook;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.AlertWebhook is { } url)
        {
            _webhook = new AlertWebhook(url, options.AlertWebhookLimits, logger);
            logger.LogInformation("Alerts are POSTed to {AlertWebhook}", url);
        }
        var view = services.GetService<IClusterViewClient>();
        using var timer = new PeriodicTimer(options.AlertPollInterval, _clock);
        try
        {
            do await EvaluateOnceAsync(view, stoppingToken);
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
        finally
        {
            if (_webhook is not null) await _webhook.DisposeAsync();
        }
    }

    private async Task EvaluateOnceAsync(IClusterViewClient? view, CancellationToken ct)
    {
        RouterStatus status;
        try { status = await client.GetStatusAsync(options.StatusTimeout, ct); }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            if (!_routerLost) logger.LogWarning("Alerts: the router did not answer ({Error}); alerts wait for it", e.Message);
            _routerLost = true;
            return;
        }
        _routerLost = false;
        ClusterView? cluster = null;
        if (view is not null)
        {
            try { cluster = await view.GetViewAsync(options.StatusTimeout, ct); }
            catch (Exception) when (!ct.IsCancellationRequested) { } // reachability waits for the next answer
        }

        var now = _clock.GetUtcNow();
        AlertEvaluation found;
        lock (_lock) found = _rules.Evaluate(status, cluster, now);
        foreach (var o in found.Occurrences)
            timeline.Add(now, o.Kind, o.Severity, o.Node, o.Worker, o.Message);
        foreach (var a in found.Changes) Raise(a);
    }

    private void Raise(Alert a)
    {
        bool firing = a.Status == "firing";
        if (firing) metrics.Alerts.WithLabels(a.Kind).Inc();
        var level = !firing ? LogLevel.Information : a.Severity == "critical" ? LogLevel.Error : LogLevel.Warning;
        using (logger.BeginScope(new Dictionary<string, object?> { ["AlertValues"] = a.Values }))
            logger.Log(level, "Alert {AlertKind} {AlertStatus} ({AlertSeverity}) on {Node} {Worker}: {AlertMessage}",
                a.Kind, a.Status, a.Severity, a.Node, a.Worker ?? "-", a.Message);
        timeline.Add(a.Time, a.Kind, firing ? a.Severity : "info", a.Node, a.Worker, a.Message, a.Status);
        _webhook?.Enqueue(a);
    }
}
