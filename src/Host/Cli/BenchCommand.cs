namespace ActorQuery.Host.Cli;

internal static class BenchCommand
{
    public static int Run(string[] args) => throw new CliException("bench is being built");
}
