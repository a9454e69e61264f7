using ActorQuery.Host.Cli;

// Verbs: serve (default), generate, bench, bench-http, soak, tokenize, train, eval. Each lives in Cli/<Verb>Command.cs.
var verb = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "serve";
var rest = args.Length > 0 && verb == args[0] ? args[1..] : args;
try
{
    return verb switch
    {
        "serve" => ServeCommand.Run(rest),
        "generate" => GenerateCommand.Run(rest),
        "bench" => BenchCommand.Run(rest),
        "bench-http" => HttpBenchCommand.Run(rest),
        "soak" => SoakCommand.Run(rest),
        "tokenize" => TokenizeCommand.Run(rest),
        "bench-tokenizer" => TokenizerBenchCommand.Run(rest),
        "train" => TrainCommand.Run(rest),
        "eval" => EvalCommand.Run(rest),
        "help" or "--help" or "-h" => Usage.Print(),
        _ => throw new CliException($"unknown verb '{verb}' (try: serve, generate, bench, bench-http, soak, tokenize, train, eval)"),
    };
}
catch (CliException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
