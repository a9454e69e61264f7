using System.Globalization;
using ActorQuery.DefaultModel.Training;

namespace ActorQuery.DefaultModel;

/// <summary>
/// <c>train --out DIR [--steps N] [--seed S] [--threads T] [--batch B] [--lr X] [--eval-every N] [--digit-loss W]</c>: trains the
/// default arithmetic model on the CPU and writes a Hugging Face folder. Same arguments, same weights.
/// </summary>
internal static class TrainCommand
{
    public static int Run(string[] argv)
    {
        var args = new CliArgs(argv, new HashSet<string> { "no-number-init" });
        var defaults = new TrainingOptions();
        string outDir = args.RequiredString("out");
        var options = defaults with
        {
            Steps = args.Int("steps", 1, 10_000_000) ?? defaults.Steps,
            Seed = args.Int("seed", 0) ?? defaults.Seed,
            Threads = args.Int("threads", 1, 256) ?? defaults.Threads,
            BatchSize = args.Int("batch", 1, 65536) ?? defaults.BatchSize,
            LearningRate = args.Float("lr", 1e-6f, 1f) ?? defaults.LearningRate,
            EvalEvery = args.Int("eval-every", 1) ?? defaults.EvalEvery,
            StopAt = args.Int("stop-at", 1),
            InitFrom = args.String("init-from"),
            WarmupSteps = args.Int("warmup", 0) ?? defaults.WarmupSteps,
            NumberInit = !args.Flag("no-number-init"),
            DigitLossWeight = args.Float("digit-loss", 0f, 100f) ?? defaults.DigitLossWeight,
        };
        var baseConfig = new TrainingModelConfig(VocabSize: 0);
        int hidden = args.Int("hidden", 16, 4096) ?? baseConfig.HiddenSize;
        int layers = args.Int("layers", 1, 64) ?? baseConfig.NumLayers;
        int mlp = args.Int("intermediate", 16, 65536) ?? hidden * 4;
        int heads = args.Int("heads", 1, 256) ?? baseConfig.NumHeads;
        int kvHeads = args.Int("kv-heads", 1, 256) ?? baseConfig.NumKeyValueHeads;
        if (hidden % heads != 0) throw new CliException($"--heads: {heads} does not divide --hidden {hidden}");
        if (options.NumberInit && options.InitFrom is null && hidden < Qwen2TrainingModel.NumberFeatures)
            throw new CliException($"--hidden: must be >= {Qwen2TrainingModel.NumberFeatures} for the number-embedding init (or pass --no-number-init)");
        if (heads % kvHeads != 0) throw new CliException($"--kv-heads: {kvHeads} does not divide --heads {heads}");
        args.EnsureAllUsed();

        void Log(string line) => Console.WriteLine($"[{DateTime.UtcNow.ToString("HH:mm:ss", CultureInfo.InvariantCulture)}] {line}");
        var tokenizer = TrainingTokenizer.CreateDefault();
        var config = baseConfig with { VocabSize = tokenizer.VocabSize, HiddenSize = hidden, NumLayers = layers, IntermediateSize = mlp, NumHeads = heads, NumKeyValueHeads = kvHeads };
        Log($"options: {options}");
        // The folder is rewritten after every evaluation, so an interrupted run leaves its latest checkpoint.
        var model = new ArithmeticTrainer(tokenizer, Log).Train(config, options, (m, step) => HfFolderWriter.Write(outDir, m, tokenizer));
        HfFolderWriter.Write(outDir, model, tokenizer);
        Log($"wrote {Path.GetFullPath(outDir)}");
        return 0;
    }
}
