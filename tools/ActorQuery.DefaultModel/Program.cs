using ActorQuery.DefaultModel;
using ActorQuery.Host.Cli;

// The default model (models/default): train writes a Hugging Face folder, eval measures its greedy accuracy.
return Verbs.Run(args, "help", new Dictionary<string, Func<string[], int>>
{
    ["train"] = TrainCommand.Run,
    ["eval"] = EvalCommand.Run,
}, _ => Usage());

static int Usage()
{
    Console.WriteLine("""
        dotnet run --project tools/ActorQuery.DefaultModel -- VERB [options]
          train      --out DIR [--steps 9000] [--batch 128] [--lr 1e-3] [--warmup 200] [--seed 1234] [--threads 1]
                     [--eval-every 500] [--stop-at N] [--init-from DIR] [--hidden 128] [--layers 4] [--heads 4]
                     [--kv-heads 2] [--intermediate 4*hidden] [--no-number-init] [--digit-loss 3]
                     trains the default arithmetic model on the CPU (defaults: the shipped recipe); writes a Hugging Face folder
          eval       --model DIR [--count 2000] [--seed 2026] [--threads 1] [--dtype float32|bfloat16|int8]
                     greedy accuracy on held-out + and - problems (at most 20000) and the multiplication table
        """);
    return 0;
}
