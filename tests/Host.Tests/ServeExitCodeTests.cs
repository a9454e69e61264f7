using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using ActorQuery.Actors;
using ActorQuery.Api;
using ActorQuery.Host.Cli;
using ActorQuery.Host.Serve;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using AkkaCluster = Akka.Cluster.Cluster;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The serve command's exit code, through <see cref="ServeCommand.Run(string[], IServeBackend)"/> as <c>actorquery
/// serve</c> runs it: a node downed out of its cluster must exit non-zero, so that systemd's Restart=on-failure (or
/// Kubernetes) restarts it; a stop on request exits 0. The backend makes a real one-node Akka.Cluster (remoting on
/// 127.0.0.1, hocon/ of the repository: run-coordinated-shutdown-when-down = on), with a fake query client for HTTP.
/// </summary>
[Collection(ServeCollection.Name)]
public sealed class ServeExitCodeTests
{
    private sealed class ClusterBackend(Action<AkkaCluster, IHostApplicationLifetime> whenUp) : IServeBackend
    {
        public void ConfigureServices(IServiceCollection services, ServeOptions options)
        {
            services.AddSingleton<IQueryClient>(new FakeQueryClient());
            services.AddSingleton<IServedModel>(new ServedModel("byte-model", 256, new ByteTokenizer(), DateTimeOffset.UtcNow));
        }

        public void ConfigureAkka(AkkaConfigurationBuilder akka, IServiceProvider services, ServeOptions options)
        {
            var lifetime = services.GetRequiredService<IHostApplicationLifetime>();
            akka.WithRemoting("127.0.0.1", 0).WithClustering(new ClusterOptions());
            akka.AddStartup((system, _) =>
            {
                var cluster = AkkaCluster.Get(system);
                // Once the member is up and the server is serving (a stop during the start is a failed start).
                cluster.RegisterOnMemberUp(() => lifetime.ApplicationStarted.Register(() => whenUp(cluster, lifetime)));
                cluster.Join(cluster.SelfAddress);
            });
        }
    }

    private static int Serve(ClusterBackend backend)
    {
        string logs = Directory.CreateTempSubdirectory("aq-logs-").FullName;
        try
        {
            var serve = Task.Run(() => ServeCommand.Run(["--urls", "http://127.0.0.1:0", "--log-folder", logs], backend));
            Assert.True(serve.Wait(TimeSpan.FromSeconds(60)), "serve did not stop within 60 s");
            return serve.Result;
        }
        finally { Directory.Delete(logs, recursive: true); }
    }

    [Fact]
    public void A_node_downed_out_of_its_cluster_exits_with_code_3()
    {
        // What the split-brain resolver does to the losing side: the member is downed, and cluster.hocon's
        // run-coordinated-shutdown-when-down ends its actor system.
        int code = Serve(new ClusterBackend((cluster, _) => cluster.Down(cluster.SelfAddress)));
        Assert.Equal(ExitCodes.ActorSystemStopped, code);
        Assert.Equal(3, code);
    }

    [Fact]
    public void A_node_stopped_on_request_exits_with_code_0()
    {
        int code = Serve(new ClusterBackend((_, lifetime) => lifetime.StopApplication())); // what SIGTERM does
        Assert.Equal(ExitCodes.Stopped, code);
    }
}
