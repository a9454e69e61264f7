using ActorQuery.Host.Cli;

// Verbs: serve (default), generate, tokenize. Each lives in Cli/<Verb>Command.cs. Benchmarks, load and soak are
// tools/ActorQuery.Bench; training and evaluation of the default model are tools/ActorQuery.DefaultModel.
var verb = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "serve";
var rest = args.Length > 0 && verb == args[0] ? args[1..] : args;
try
{
    return verb switch
    {
        "serve" => ServeCommand.Run(rest),
        "generate" => GenerateCommand.Run(rest),
        "tokenize" => TokenizeCommand.Run(rest),
        "help" when rest is ["--markdown"] => Usage.PrintMarkdown(),
        "help" or "--help" or "-h" => Usage.Print(),
        _ => throw new CliException($"unknown verb '{verb}' (try: serve, generate, tokenize, help; benchmarks: "
                                    + "dotnet run --project tools/ActorQuery.Bench; the default model's trainer: tools/ActorQuery.DefaultModel)"),
    };
}
catch (CliException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
