namespace ActorQuery.Actors.Tests.Support;

/// <summary>Specs that measure the process's memory or touch torch's global state run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessMemoryCollection
{
    public const string Name = "process memory";
}
