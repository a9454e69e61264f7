using ActorQuery.Api;
using ActorQuery.Api.Observability;
using Microsoft.AspNetCore.Http;
using Serilog;
using Serilog.AspNetCore;
using Serilog.Events;

namespace ActorQuery.Host.Serve;

/// <summary>
/// Serilog for serve: console, <c>{LogFolder}/app-YYYYMMDD.log</c> (everything) and <c>error-YYYYMMDD.log</c>
/// (errors only), both rolled daily. Akka logs into the same logger through Akka.Logger.Serilog (hocon/host.hocon).
/// </summary>
public static class ServeLogging
{
    private const string FileTemplate =
        "{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz} [{Level:u3}] {SourceContext}: {Message:lj} {Properties:j}{NewLine}{Exception}";

    private const string ConsoleTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}";

    public static Serilog.Core.Logger Create(ServeOptions options)
    {
        var level = Enum.Parse<LogEventLevel>(options.LogLevel, ignoreCase: true);
        string folder = Path.GetFullPath(options.LogFolder);
        return new LoggerConfiguration()
            .MinimumLevel.Is(level)
            // One line per request comes from the request logging below; ASP.NET's own per-request lines would double it.
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
            .Enrich.FromLogContext()
            .Enrich.WithProperty("Application", "actorquery")
            .WriteTo.Console(outputTemplate: ConsoleTemplate)
            .WriteTo.File(Path.Combine(folder, "app-.log"), rollingInterval: RollingInterval.Day, outputTemplate: FileTemplate,
                retainedFileCountLimit: 31, shared: true)
            .WriteTo.File(Path.Combine(folder, "error-.log"), restrictedToMinimumLevel: LogEventLevel.Error,
                rollingInterval: RollingInterval.Day, outputTemplate: FileTemplate, retainedFileCountLimit: 90, shared: true)
            .CreateLogger();
    }

    /// <summary>One line per request: id, endpoint, status, tokens, latency (and worker and outcome as properties).</summary>
    /// <remarks>
    /// Levels: a server fault (500, or an exception) is an Error and so also lands in error-YYYYMMDD.log; refusals
    /// the server chose (429, 503, 504) are Warnings; probes and scrapes (/health*, /metrics) are Debug so that a
    /// 15-second Prometheus scrape does not bury the queries; everything else is Information.
    /// </remarks>
    public static void ConfigureRequestLogging(RequestLoggingOptions o, Serilog.ILogger logger)
    {
        o.Logger = logger;
        o.MessageTemplate = "{RequestId} {RequestMethod} {RequestPath} -> {StatusCode} in {Elapsed:0.0} ms{Tokens:l}";
        o.GetLevel = (context, _, exception) =>
            exception is not null || context.Response.StatusCode is 500 or 501 or 502 ? LogEventLevel.Error
            : context.Request.Path.StartsWithSegments("/metrics") || context.Request.Path.StartsWithSegments("/health") ? LogEventLevel.Debug
            : context.Response.StatusCode is 401 or 403 or 429 or 503 or 504 ? LogEventLevel.Warning
            : LogEventLevel.Information;
        o.EnrichDiagnosticContext = (diagnostics, context) =>
        {
            diagnostics.Set("RequestId", RequestIdMiddleware.Get(context));
            if (RequestIdMiddleware.ClientId(context) is { } client) diagnostics.Set("ClientRequestId", client);
            // The key's label (or the first hex digits of its hash), never the key: who did what, and whose limit it hit.
            if (ActorQuery.Api.Security.ApiKey.Of(context) is { } key) diagnostics.Set("ApiKey", key.Label);
            diagnostics.Set("Endpoint", (context.GetEndpoint() as Microsoft.AspNetCore.Routing.RouteEndpoint)?.RoutePattern.RawText ?? "unmatched");
            var stats = context.Features.Get<RequestStats>();
            diagnostics.Set("Tokens", stats?.PromptTokens is { } p ? $", tokens {p}+{stats.CompletionTokens ?? 0}" : "");
            if (stats is null) return;
            diagnostics.Set("PromptTokens", stats.PromptTokens);
            diagnostics.Set("CompletionTokens", stats.CompletionTokens);
            if (stats.Worker is not null) diagnostics.Set("Worker", stats.Worker);
            if (stats.Cached is not null) diagnostics.Set("Cached", stats.Cached);
            if (stats.FinishReason is not null) diagnostics.Set("FinishReason", stats.FinishReason);
            if (stats.Outcome is not null) diagnostics.Set("Outcome", stats.Outcome);
        };
    }
}
