using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ActorQuery.Api.Shutdown;

/// <summary>
/// On SIGTERM / Ctrl+C: readiness goes 503 and new generation requests get 503 at once, while Kestrel still
/// listens; running requests get up to <see cref="ApiOptions.DrainTimeout"/> to finish. Runs in the host's
/// "stopping" phase, before the web server and Akka (coordinated shutdown) are stopped.
/// </summary>
internal sealed class DrainOnShutdown(DrainGate gate, ApiOptions options, ILogger<DrainOnShutdown> logger) : IHostedLifecycleService
{
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        gate.BeginDrain();
        logger.LogInformation("Shutting down: draining {Active} running requests for up to {DrainSeconds} s", gate.Active,
            options.DrainTimeout.TotalSeconds);
        bool drained = await gate.WaitIdleAsync(options.DrainTimeout, cancellationToken);
        if (drained) logger.LogInformation("All requests finished; stopping");
        else logger.LogWarning("Drain timeout passed with {Active} requests still running; they will be cancelled", gate.Active);
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
