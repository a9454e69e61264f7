using Akka.Actor;
using Akka.Hosting;
using Akka.Logger.Serilog;
using ActorQuery.Actors.Cluster;
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
        // The command line is the last layer; a worker process's is its parent's command line and its own keys
        // (WorkerProcessRole), read from the environment.
        void AddCommandLine()
        {
            builder.Configuration.AddInMemoryCollection(cliOverrides);
            if (WorkerProcessRole.Current is not null) builder.Configuration.AddEnvironmentVariables(WorkerProcessRole.ConfigPrefix);
        }
        AddCommandLine();
        // --settings: a JSON file over the environment, re-read when it changes; the command line keeps the last word.
        if (builder.Configuration[$"{ServeOptions.Section}:SettingsFile"] is { Length: > 0 } settingsFile)
        {
            if (!File.Exists(settingsFile)) throw new OptionsException($"{ServeOptions.Section}:SettingsFile '{settingsFile}' does not exist");
            builder.Configuration.AddJsonFile(Path.GetFullPath(settingsFile), optional: false, reloadOnChange: true);
            AddCommandLine();
        }
        var options = ServeOptions.From(builder.Configuration);
        // A server whose models run in worker processes only routes requests here: many threads each allocating a little
        // made glibc open an arena per thread and keep their fragments (scripts/fuzz-api.sh: +22% resident after 23,000
        // requests even after a full collection and malloc_trim; with 2 arenas, within 10%). Worker processes keep glibc's
        // default for libtorch's allocations.
        if (WorkerProcessRole.Current is null && options.WorkerProcesses > 0) ActorQuery.Contracts.NativeMemory.LimitMallocArenas(2);
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
        builder.Services.AddSingleton<ServeOutcome>();
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
            // The backend wires the remoting (AddActorQueryNode); TLS goes onto it here, for every backend alike.
            if (ClusterTlsFiles.Load(options.Cluster) is { } tls) akka.WithClusterTls(tls);
        });

        var app = builder.Build();
        app.UseSerilogRequestLogging(o => ServeLogging.ConfigureRequestLogging(o, logger));
        app.UseActorQueryApi();
        // An actor system that ends under a running server (the split-brain resolver downed this node, the cluster removed
        // it, an outbound TLS handshake failed) leaves HTTP without actors: stop the process too, with exit code
        // ActorSystemStopped, so that its supervisor (systemd Restart=on-failure, Kubernetes) restarts it and it rejoins.
        // Akka.Hosting may call StopApplication first on its own, so what counts is whether the actor system had already
        // ended when the application began to stop: on SIGTERM it ends only after the drain.
        var outcome = app.Services.GetRequiredService<ServeOutcome>();
        ActorSystem? started = null; // set once serving: a start that failed is no node that stopped under the server
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            started = ActorSystem(app);
            started.WhenTerminated.ContinueWith(_ =>
            {
                if (app.Lifetime.ApplicationStopping.IsCancellationRequested) return;
                app.Lifetime.StopApplication();
            }, TaskScheduler.Default);
        });
        if (WorkerProcessRole.Current is { } role)
            app.Lifetime.ApplicationStarted.Register(() =>
            {
                logger.Information("worker process {Id} of {Count} (parent pid {Parent})", role.Id, role.Count, role.ParentPid);
                WorkerProcessRole.StopWithParent(app.Lifetime.StopApplication);
            });
        app.Lifetime.ApplicationStopping.Register(() =>
        {
            if (started is not { WhenTerminated.IsCompleted: true } system) return;
            outcome.ExitCode = ExitCodes.ActorSystemStopped;
            logger.Error("the actor system stopped under the running server ({Reason}); stopping with exit code {Code}",
                CoordinatedShutdown.Get(system).ShutdownReason?.ToString() ?? "terminated", outcome.ExitCode);
        });
        app.Lifetime.ApplicationStarted.Register(() =>
            logger.Information("ActorQuery serving {Model} on {Urls}; logs in {LogFolder}",
                options.IsPool ? "a model pool (" + string.Join(", ", app.Services.GetRequiredService<ActorQuery.Api.IServedModels>().All.Select(m => m.Name)) + ")" : options.ModelFolder,
                string.Join(", ", app.Urls),
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

    /// <summary>How <paramref name="app"/> ended, to read once it has stopped; take it before running the app, which
    /// disposes its services when it stops.</summary>
    public static ServeOutcome Outcome(WebApplication app) => app.Services.GetRequiredService<ServeOutcome>();

    /// <summary>The running actor system (for tests and diagnostics).</summary>
    public static ActorSystem ActorSystem(WebApplication app) => app.Services.GetRequiredService<ActorSystem>();
}

/// <summary>The command line's configuration keys, as given (a worker process is started with them).</summary>
internal sealed record ServeCommandLine(IReadOnlyDictionary<string, string?> Settings);

/// <summary>How the serve process ended; the README's exit code table says the same.</summary>
public static class ExitCodes
{
    /// <summary>Stopped on request (SIGTERM, Ctrl+C) after the drain.</summary>
    public const int Stopped = 0;
    /// <summary>An unexpected exception ended the server.</summary>
    public const int Crashed = 1;
    /// <summary>Refused at start: a bad option, a memory plan that does not fit, unusable TLS files.</summary>
    public const int BadStart = 2;
    /// <summary>The actor system stopped under the running server: downed by the split-brain resolver, removed from the
    /// cluster, or an outbound TLS handshake failed. Non-zero, so that Restart=on-failure restarts the node.</summary>
    public const int ActorSystemStopped = 3;
}

/// <summary>What the server knows of its own end, read after it stopped (<see cref="ServeApp.Outcome"/>).</summary>
public sealed class ServeOutcome
{
    /// <summary>One of <see cref="ExitCodes"/>: <see cref="ExitCodes.Stopped"/> unless the server saw otherwise.</summary>
    public int ExitCode { get; internal set; } = ExitCodes.Stopped;
}
