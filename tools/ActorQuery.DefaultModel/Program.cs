using ActorQuery.DefaultModel;
using ActorQuery.Host.Cli;

// The default model (models/default): train writes a Hugging Face folder, eval measures its greedy accuracy.
var verb = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "help";
var rest = args.Length > 0 && verb == args[0] ? args[1..] : args;
try
{
    return verb switch
    {
        "train" => TrainCommand.Run(rest),
        "eval" => EvalCommand.Run(rest),
        "help" or "--help" or "-h" => Usage(),
        _ => throw new CliException($"unknown verb '{verb}' (try: train, eval, help)"),
    };
}
catch (CliException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

static int Usage()
{
    Console.WriteLine("""
        dotnet run --project tools/ActorQuery.DefaultModel -- VERB [options]
          train      --out DIR [--steps 9000] [--batch 128] [--lr 1e-3] [--warmup 200] [--seed 1234] [--threads 1]
                     [--eval-every 500] [--stop-at N] [--init-from DIR] [--hidden 128] [--layers 4] [--heads 4]
                     [--kv-heads 2] [--intermediate 4*hidden] [--no-number-init] [--digit-loss 3]
                     trains the default arithmetic model on the CPU (defaults: the shipped recipe); writes a Hugging Face folder
          eval       --model DIR [--count 2000] [--seed 2026] [--threads 1]
                     greedy accuracy on held-out + and - problems (at most 20000) and the multiplication table
        """);
    return 0;
}
