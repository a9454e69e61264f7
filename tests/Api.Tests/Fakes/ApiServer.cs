using ActorQuery.TestSupport;
using ActorQuery.Actors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ActorQuery.Api.Tests.Fakes;

/// <summary>The real API on Kestrel at 127.0.0.1 with a random port, over a fake router and a byte tokenizer.</summary>
public sealed class ApiServer : IAsyncDisposable
{
    public const string ModelName = "byte-model";
    public const int ContextLength = 512;

    public WebApplication App { get; }
    public FakeQueryClient Fake { get; }
    public Uri BaseAddress { get; }
    public HttpClient Http { get; }

    private ApiServer(WebApplication app, FakeQueryClient fake, Uri address)
    {
        App = app;
        Fake = fake;
        BaseAddress = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    public static async Task<ApiServer> StartAsync(FakeQueryClient? fake = null, Action<ApiOptions>? configure = null,
        ActorQuery.Actors.Cluster.IClusterViewClient? cluster = null, ActorQuery.Tokenization.ITokenizer? tokenizer = null,
        INodeAdminClient? admin = null)
    {
        fake ??= new FakeQueryClient();
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IQueryClient>(fake);
        if (cluster is not null) builder.Services.AddSingleton(cluster);
        if (admin is not null) builder.Services.AddSingleton(admin);
        builder.Services.AddSingleton<IServedModel>(new ServedModel(ModelName, ContextLength, tokenizer ?? new ByteTokenizer(),
            DateTimeOffset.Parse("2026-11-27T00:00:00Z")));
        builder.Services.AddActorQueryApi(o =>
        {
            o.DefaultMaxTokens = 64;
            configure?.Invoke(o);
        });
        var app = builder.Build();
        app.UseActorQueryApi();
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ApiServer(app, fake, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        Fake.Release();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

/// <summary>One server shared by the tests of a class that do not change the fake's settings.</summary>
public sealed class SharedServer : IAsyncLifetime
{
    public ApiServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ApiServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
