namespace ActorQuery.Bench.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ServeCollection
{
    // Serilog's static logger (used by Akka.Logger.Serilog) and environment variables are process-wide.
    public const string Name = "serve (process-wide state)";
}
