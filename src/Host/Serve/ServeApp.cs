using Akka.Actor;
using Akka.Hosting;
using Akka.Logger.Serilog;
using ActorQuery.Api;
using ActorQuery.Api.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog;

namespace ActorQuery.Host.Serve;

/// <summary>
/// Builds the serve application: configuration layers, Serilog, Akka (Akka.Hosting, hocon/*.hocon), the HTTP API
/// and the backend's model and actors. Shutdown order on SIGTERM / Ctrl+C: the API drains (readiness 503, new
/// queries 503, running ones get DrainTimeoutSeconds), Kestrel stops, then Akka runs coordinated shutdown.
/// </summary>
public static class ServeApp
{
    /// <summary>The default actor system name (ActorQuery:Cluster:SystemName).</summary>
    public const string ActorSystemName = "actorquery";

    /// <param name="cliOverrides">Configuration keys from the command line (the last layer).</param>
    /// <param name="contentRoot">Where appsettings.json is read; the executable's folder by default.</param>
    /// <param name="hoconFolder">Where hocon/*.hocon are read; next to the executable by default.</param>
    public static WebApplication Build(IDictionary<string, string?> cliOverrides, IServeBackend backend,
        string? contentRoot = null, string? hoconFolder = null)
    {
        // The content root is the executable's folder so that appsettings.json is found whatever the working
        // directory; relative paths in the options (model folder, log folder) stay relative to the working directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ContentRootPath = contentRoot ?? AppContext.BaseDirectory,
            Args = [],
        });
        builder.Configuration.AddInMemoryCollection(cliOverrides);
        // --settings: a JSON file over the environment, re-read when it changes; the command line keeps the last word.
        if (builder.Configuration[$"{ServeOptions.Section}:SettingsFile"] is { Length: > 0 } settingsFile)
        {
            if (!File.Exists(settingsFile)) throw new OptionsException($"{ServeOptions.Section}:SettingsFile '{settingsFile}' does not exist");
            builder.Configuration.AddJsonFile(Path.GetFullPath(settingsFile), optional: false, reloadOnChange: true);
            builder.Configuration.AddInMemoryCollection(cliOverrides);
        }
        // A worker process: its parent's command line and its own keys, last (WorkerProcessRole).
        if (WorkerProcessRole.Current is not null) builder.Configuration.AddEnvironmentVariables(WorkerProcessRole.ConfigPrefix);
        var options = ServeOptions.From(builder.Configuration);
        var hocon = HoconFiles.Load(hoconFolder ?? HoconFiles.DefaultFolder);

        var logger = ServeLogging.Create(options);
        Log.Logger = logger; // static: Akka.Logger.Serilog writes through Log.Logger
        builder.Services.AddSerilog(logger, dispose: true);

        builder.WebHost.UseUrls(options.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        // The API enforces MaxBodyBytes itself with an explained 413; Kestrel's own cap only has to stay above it.
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = Math.Max(30L << 20, options.MaxBodyBytesValue + 1);
            var http = options.Http;
            k.Limits.RequestHeadersTimeout = http.RequestHeadersTimeout;
            k.Limits.KeepAliveTimeout = http.KeepAliveTimeout;
            k.Limits.MinRequestBodyDataRate = http.MinRequestBodyDataRate > 0 ? new MinDataRate(http.MinRequestBodyDataRate, http.MinDataRateGracePeriod) : null;
            k.Limits.MinResponseDataRate = http.MinResponseDataRate > 0 ? new MinDataRate(http.MinResponseDataRate, http.MinDataRateGracePeriod) : null;
            k.Limits.MaxConcurrentConnections = http.MaxConcurrentConnections > 0 ? http.MaxConcurrentConnections : null;
        });
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.DrainTimeout + TimeSpan.FromSeconds(30));

        builder.Services.AddSingleton(options);
        var commandLine = new Dictionary<string, string?>(cliOverrides, StringComparer.OrdinalIgnoreCase);
        // Worker processes inherit the keys (their configuration is this command line and this environment), so their
        // loopback API wants one too: this run's own key, known only to this process and its children, lets the server
        // read their /memory without handing them a user's key or leaving their port open to other local users.
        string? workerProcessKey = options.HasApiKeys ? Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)) : null;
        if (workerProcessKey is not null) commandLine[$"{ServeOptions.Section}:ApiKeys:workerprocesses"] = workerProcessKey;
        builder.Services.AddSingleton(new ServeCommandLine(commandLine));
        // The Akka configuration as loaded from hocon/, the only source: the node wiring takes it from here.
        builder.Services.AddSingleton(HoconFiles.Merge(hocon));
        backend.ConfigureServices(builder.Services, options);
        builder.Services.AddActorQueryApi(api =>
        {
            api.MaxBodyBytes = options.MaxBodyBytesValue;
            api.DefaultMaxTokens = options.DefaultMaxTokens;
            api.DrainTimeout = options.DrainTimeout;
            api.AlertWebhook = options.AlertWebhook.Length == 0 ? null : new Uri(options.AlertWebhook);
            api.MaxStopStrings = options.MaxStopStrings;
            api.MaxMessages = options.MaxMessages;
            api.MaxPromptChars = options.MaxPromptChars;
            api.Security = new SecurityOptions
            {
                WorkerProcessKey = workerProcessKey,
                ApiKeys = ApiKeySet.From(options.ApiKeys.Select(k => k.Trim()), options.ApiKeyFile),
                AdminKeys = ApiKeySet.From(options.AdminKeys.Select(k => k.Trim()), options.AdminKeyFile),
                MetricsAuth = options.MetricsAuth,
                RequestsPerMinute = options.KeyRequestsPerMinute,
                TokensPerMinute = options.KeyTokensPerMinute,
                ConcurrentRequests = options.KeyConcurrentRequests,
            };
        });

        builder.Services.AddAkka(options.Cluster.SystemName, (akka, services) =>
        {
            foreach (var (_, config) in hocon) akka.AddHocon(config, HoconAddMode.Prepend); // later files win
            akka.ConfigureLoggers(loggers =>
            {
                loggers.LogLevel = AkkaLogLevel(options.LogLevel);
                loggers.ClearLoggers();
                loggers.AddLogger<SerilogLogger>();
            });
            backend.ConfigureAkka(akka, services, options);
        });

        var app = builder.Build();
        app.UseSerilogRequestLogging(o => ServeLogging.ConfigureRequestLogging(o, logger));
        app.UseActorQueryApi();
        // An actor system that ends under a running server (the split-brain resolver downed this node, or the cluster
        // removed it) leaves HTTP without actors: stop the process too, so that its supervisor restarts it and it rejoins.
        app.Lifetime.ApplicationStarted.Register(() => ActorSystem(app).WhenTerminated.ContinueWith(_ =>
        {
            if (app.Lifetime.ApplicationStopping.IsCancellationRequested) return;
            logger.Error("the actor system stopped under the running server (downed or removed from the cluster); stopping");
            app.Lifetime.StopApplication();
        }, TaskScheduler.Default));
        if (WorkerProcessRole.Current is { } role)
            app.Lifetime.ApplicationStarted.Register(() =>
            {
                logger.Information("worker process {Id} of {Count} (parent pid {Parent})", role.Id, role.Count, role.ParentPid);
                WorkerProcessRole.StopWithParent(app.Lifetime.StopApplication);
            });
        app.Lifetime.ApplicationStarted.Register(() =>
            logger.Information("ActorQuery serving {Model} on {Urls}; logs in {LogFolder}", options.ModelFolder, string.Join(", ", app.Urls),
                Path.GetFullPath(options.LogFolder)));
        return app;
    }

    private static Akka.Event.LogLevel AkkaLogLevel(string level) => level.ToLowerInvariant() switch
    {
        "verbose" or "debug" => Akka.Event.LogLevel.DebugLevel,
        "information" => Akka.Event.LogLevel.InfoLevel,
        "warning" => Akka.Event.LogLevel.WarningLevel,
        _ => Akka.Event.LogLevel.ErrorLevel,
    };

    /// <summary>The running actor system (for tests and diagnostics).</summary>
    public static ActorSystem ActorSystem(WebApplication app) => app.Services.GetRequiredService<ActorSystem>();
}

/// <summary>The command line's configuration keys, as given (a worker process is started with them).</summary>
internal sealed record ServeCommandLine(IReadOnlyDictionary<string, string?> Settings);
