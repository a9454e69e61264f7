using Akka.Configuration;
using ActorQuery.Actors.Hosting;
using ActorQuery.TestSupport;

namespace ActorQuery.Actors.Tests.Support;

/// <summary>
/// The repository's hocon/ files, the only source of the node's Akka configuration. host.hocon is left out: it
/// routes Akka's logging through Serilog, which the specs do not load.
/// </summary>
public static class RepoHocon
{
    public static string Folder { get; } = Path.Combine(RepoFixtures.Root, "hocon");

    private static readonly IReadOnlyList<(string File, Config Config)> Files = HoconFolder.Load(Folder);

    /// <summary>actors.hocon: the pinned model dispatcher.</summary>
    public static Config Actors { get; } = File("actors.hocon");

    /// <summary>cluster.hocon: serializer bindings, split-brain resolver.</summary>
    public static Config Cluster { get; } = File("cluster.hocon");

    /// <summary>What a node is wired with: actors.hocon and cluster.hocon.</summary>
    public static Config Node { get; } = HoconFolder.Merge(Files.Where(f => f.File != "host.hocon").ToList());

    private static Config File(string name) => Files.Single(f => f.File == name).Config;
}
