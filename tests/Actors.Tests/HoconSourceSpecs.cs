using Akka.Actor;
using Akka.Hosting;
using ActorQuery.Actors.Cluster;
using ActorQuery.Actors.Hosting;
using ActorQuery.Actors.Tests.Support;
using ActorQuery.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ActorQuery.Actors.Tests;

/// <summary>The files in hocon/ are the node's only Akka configuration: nothing embedded brings a deleted key back.</summary>
public sealed class HoconSourceSpecs
{
    private const string Throughput = "actorquery.model-dispatcher.throughput";

    private static async Task<bool> NodeHas(string folder, string path)
    {
        var files = HoconFolder.Load(folder).Where(f => f.File != "host.hocon").ToList();
        using var host = new HostBuilder()
            .ConfigureServices(services => services.AddAkka("actorquery-hocon", (akka, _) => akka
                .AddHocon("akka.loglevel = WARNING", HoconAddMode.Prepend)
                .AddActorQueryNode(HoconFolder.Merge(files), new ActorQueryNodeOptions { Workers = new WorkerOptions { Count = 0 } },
                    new ClusterNodeOptions { Roles = [ClusterNodeOptions.GatewayRole] }, _ => new FakeEngineFactory())))
            .Build();
        await host.StartAsync();
        try { return host.Services.GetRequiredService<ActorSystem>().Settings.Config.HasPath(path); }
        finally { await host.StopAsync(); }
    }

    [Fact]
    public async Task Should_not_bring_back_a_key_removed_from_a_copy_of_the_hocon_files()
    {
        string copy = Directory.CreateTempSubdirectory("aq-hocon-copy-").FullName;
        try
        {
            foreach (var file in Directory.GetFiles(RepoHocon.Folder, "*.hocon"))
                File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
            Assert.True(await NodeHas(copy, Throughput)); // the unchanged copy sets it

            string actors = Path.Combine(copy, "actors.hocon");
            var lines = File.ReadAllLines(actors);
            Assert.Single(lines, l => l.Trim() == "throughput = 1");
            File.WriteAllLines(actors, lines.Where(l => l.Trim() != "throughput = 1"));

            Assert.False(await NodeHas(copy, Throughput));
        }
        finally { Directory.Delete(copy, recursive: true); }
    }
}
