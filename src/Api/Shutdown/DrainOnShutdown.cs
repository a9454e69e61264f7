using ActorQuery.Actors;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ActorQuery.Api.Shutdown;

/// <summary>
/// On SIGTERM / Ctrl+C: readiness goes 503 and new generation requests get 503 at once, while Kestrel still
/// listens; running requests get up to <see cref="ApiOptions.DrainTimeout"/> to finish. Runs in the host's
/// "stopping" phase, before the web server and Akka (coordinated shutdown) are stopped.
/// </summary>
internal sealed class DrainOnShutdown(DrainGate gate, ApiOptions options, IQueryClient client, ILogger<DrainOnShutdown> logger)
    : IHostedLifecycleService
{
    /// <summary>How long the requests get, after the timeout, to write the error event and the end of their stream.</summary>
    private static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(3);

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        gate.BeginDrain();
        logger.LogInformation("Shutting down: draining {Active} running requests for up to {DrainSeconds} s", gate.Active,
            options.DrainTimeout.TotalSeconds);
        // The node's workers leave every gateway's routing now; the queries they run go on.
        try { await client.StartDrainingAsync(cancellationToken); }
        catch (Exception e) when (e is not OperationCanceledException) { logger.LogWarning("the router could not be told to drain: {Reason}", e.Message); }
        bool drained = await gate.WaitIdleAsync(options.DrainTimeout, cancellationToken);
        if (drained)
        {
            logger.LogInformation("All requests finished; stopping");
            return;
        }
        // Never a cut stream: each running query ends with an error naming the shutdown, then its stream's end.
        logger.LogWarning("Drain timeout passed with {Active} requests still running; ending them with an error", gate.Active);
        try { await client.AbortAllAsync($"the node is shutting down: its drain timeout of {options.DrainTimeout.TotalSeconds:0.#} s passed", cancellationToken); }
        catch (Exception e) when (e is not OperationCanceledException) { logger.LogWarning("the router could not end the queries: {Reason}", e.Message); }
        if (!await gate.WaitIdleAsync(AbortGrace, cancellationToken))
            logger.LogWarning("{Active} requests did not end within {Grace} s after the error; they are cancelled", gate.Active, AbortGrace.TotalSeconds);
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
