using System.Net;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Akka.Event;
using Microsoft.Extensions.Hosting;
using Akka.Hosting;
using ActorQuery.Actors;
using ActorQuery.Api;
using ActorQuery.Host.Cli;
using ActorQuery.Host.Serve;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQuery.Host.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ServeCollection
{
    // Serilog's static logger (used by Akka.Logger.Serilog) and environment variables are process-wide.
    public const string Name = "serve (process-wide state)";
}

/// <summary>The whole serve pipeline (configuration, Serilog, Akka, API) on Kestrel at 127.0.0.1, over a fake backend.</summary>
[Collection(ServeCollection.Name)]
public sealed class ServeAppTests
{
    private sealed class FakeBackend(FakeQueryClient fake) : IServeBackend
    {
        public bool AkkaConfigured;

        public void ConfigureServices(IServiceCollection services, ServeOptions options)
        {
            services.AddSingleton<IQueryClient>(fake);
            services.AddSingleton<IServedModel>(new ServedModel("byte-model", 256, new ByteTokenizer(), DateTimeOffset.UtcNow));
        }

        public void ConfigureAkka(AkkaConfigurationBuilder akka, IServiceProvider services, ServeOptions options) => AkkaConfigured = true;
    }

    private static async Task<(WebApplication App, HttpClient Http)> StartAsync(FakeQueryClient fake, string logs, params string[] args)
    {
        var app = ServeApp.Build(ServeCli.Parse(["--urls", "http://127.0.0.1:0", "--log-folder", logs, .. args]), new FakeBackend(fake));
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(30) });
    }

    private static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(stream).ReadToEnd();
    }

    [Fact]
    public async Task Serve_answers_queries_and_writes_one_line_per_request_to_app_and_errors_to_error_log()
    {
        string logs = Directory.CreateTempSubdirectory("aq-logs-").FullName;
        var (app, http) = await StartAsync(new FakeQueryClient(), logs);
        string okId, failId;
        try
        {
            var ok = await http.PostAsync("/query", Body("""{"prompt": "hello", "max_new_tokens": 3}"""));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            okId = ok.Headers.GetValues("X-Request-Id").Single();
            Assert.Equal("hel", JsonDocument.Parse(await ok.Content.ReadAsStringAsync()).RootElement.GetProperty("text").GetString());
            var fail = await http.PostAsync("/v1/completions", Body("""{"prompt": "x #fail"}"""));
            Assert.Equal(HttpStatusCode.InternalServerError, fail.StatusCode);
            failId = fail.Headers.GetValues("X-Request-Id").Single();
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        string day = DateTime.Now.ToString("yyyyMMdd");
        string appLog = ReadShared(Path.Combine(logs, $"app-{day}.log"));
        string errorLog = ReadShared(Path.Combine(logs, $"error-{day}.log"));
        var okLine = Assert.Single(appLog.Split('\n'), l => l.Contains(okId));
        Assert.Contains("POST /query -> 200", okLine);
        Assert.Contains("tokens 5+3", okLine);
        Assert.Contains("\"Endpoint\":\"/query\"", okLine);
        Assert.Contains("\"Worker\":\"fake-node/worker-0\"", okLine);
        Assert.Contains(failId, appLog);
        Assert.Contains(failId, errorLog);
        Assert.DoesNotContain(okId, errorLog);
        Directory.Delete(logs, recursive: true);
    }

    [Fact]
    public async Task Serve_runs_akka_with_the_hocon_files_and_serilog_logging()
    {
        string logs = Directory.CreateTempSubdirectory("aq-logs-").FullName;
        var backend = new FakeBackend(new FakeQueryClient());
        var app = ServeApp.Build(ServeCli.Parse(["--urls", "http://127.0.0.1:0", "--log-folder", logs]), backend);
        await app.StartAsync();
        try
        {
            var system = app.Services.GetRequiredService<ActorSystem>();
            Assert.Equal(ServeApp.ActorSystemName, system.Name);
            Assert.True(backend.AkkaConfigured);
            Assert.False(system.Settings.Config.GetBoolean("akka.coordinated-shutdown.run-by-clr-shutdown-hook"));
            Assert.Contains(system.Settings.Loggers, l => l.Contains("SerilogLogger"));
            system.Log.Warning("akka says {0}", "hello-from-akka");
            // Akka logs asynchronously through its logger actor: wait for the line to reach the file before stopping.
            string appLog = Path.Combine(logs, $"app-{DateTime.Now:yyyyMMdd}.log");
            await Eventually.Until(() => File.Exists(appLog) && ReadShared(appLog).Contains("hello-from-akka"), TimeSpan.FromSeconds(10),
                "Akka's warning to reach the app log through Serilog", interval: TimeSpan.FromMilliseconds(25));
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        Assert.Contains("hello-from-akka", ReadShared(Path.Combine(logs, $"app-{DateTime.Now:yyyyMMdd}.log")));
        Directory.Delete(logs, recursive: true);
    }

    [Fact]
    public async Task Sigterm_drains_running_queries_refuses_new_ones_then_stops_akka()
    {
        string logs = Directory.CreateTempSubdirectory("aq-logs-").FullName;
        var fake = new FakeQueryClient();
        var (app, http) = await StartAsync(fake, logs, "--drain-timeout", "20");
        var system = app.Services.GetRequiredService<ActorSystem>();

        var running = http.PostAsync("/query", Body("""{"prompt": "drain me #hold", "max_new_tokens": 5}"""));
        await Eventually.Until(() => fake.Active > 0, TimeSpan.FromSeconds(10), "the held query to reach the fake router");
        app.Lifetime.StopApplication(); // what SIGTERM / Ctrl+C do
        var stopped = app.WaitForShutdownAsync();

        var ready = await http.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        var late = await http.PostAsync("/v1/chat/completions", Body("""{"messages": [{"role": "user", "content": "late"}]}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, late.StatusCode);
        Assert.False(system.WhenTerminated.IsCompleted); // Akka stays up while queries drain

        fake.Release();
        var answer = await running;
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("drain", JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement.GetProperty("text").GetString());
        await stopped.WaitAsync(TimeSpan.FromSeconds(60));
        await system.WhenTerminated.WaitAsync(TimeSpan.FromSeconds(30));
        await app.DisposeAsync();
        Directory.Delete(logs, recursive: true);
    }

    [Fact]
    public void Serve_refuses_bad_options_before_starting_anything()
    {
        var e = Assert.Throws<CliException>(() => ServeCommand.Run(["--dtype", "int3"], new FakeBackend(new FakeQueryClient())));
        Assert.Contains("Dtype", e.Message);
    }
}
