namespace ActorQuery.Host.Cli;

internal static class GenerateCommand
{
    public static int Run(string[] args) => throw new CliException("generate is being built");
}
