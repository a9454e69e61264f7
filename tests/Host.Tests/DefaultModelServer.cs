using System.Net;
using ActorQuery.Host.Serve;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQuery.Host.Tests;

/// <summary>The shipped server with the default model on a free loopback port, ready, and a client for it.</summary>
internal sealed class DefaultModelServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private DefaultModelServer(WebApplication app, string url)
    {
        _app = app;
        Url = url;
        Http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>The address Kestrel bound, e.g. http://127.0.0.1:41234.</summary>
    public string Url { get; }

    /// <summary>A client for the server (60 s timeout).</summary>
    public HttpClient Http { get; }

    /// <summary>The model folder the server serves (the embedded default model, copied beside the tests).</summary>
    public static string ModelFolder { get; } = Path.Combine(AppContext.BaseDirectory, "models", "default");

    /// <param name="args">serve options besides the model, address, device and dtype (answer cache off by default);
    /// logs go to a new temporary folder unless <c>--log-folder</c> is among them.</param>
    /// <param name="settings">configuration keys set on top (faults, worker options).</param>
    /// <param name="modelFolder">Another model folder to serve (default: <see cref="ModelFolder"/>).</param>
    public static async Task<DefaultModelServer> StartAsync(string[] args, Dictionary<string, string?>? settings = null, string? modelFolder = null)
    {
        string[] logs = args.Contains("--log-folder") ? [] : ["--log-folder", Directory.CreateTempSubdirectory("aq-real-").FullName];
        var overrides = ServeCli.Parse(["--model", modelFolder ?? ModelFolder, "--urls", "http://127.0.0.1:0", .. logs,
            "--device", "cpu", "--dtype", "float32", "--cache-entries", "0", .. args]);
        foreach (var (key, value) in settings ?? []) overrides[key] = value;
        var app = ServeApp.Build(overrides, ServeBackends.Default());
        await app.StartAsync();
        var server = new DefaultModelServer(app, app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        try
        {
            await Eventually.Until(async () =>
                {
                    using var ready = await server.Http.GetAsync("/health/ready");
                    return ready.StatusCode;
                }, status => status == HttpStatusCode.OK, TimeSpan.FromSeconds(60), "the default model server to answer /health/ready with 200",
                status => $"{(int)status} {status}", interval: TimeSpan.FromMilliseconds(100));
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
