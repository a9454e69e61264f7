using System.Globalization;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization;
using ActorQuery.DefaultModel.Training;

namespace ActorQuery.DefaultModel;

/// <summary>
/// <c>eval --model DIR [--count N] [--seed S] [--threads T]</c>: greedy accuracy of the arithmetic model, through the
/// serving engine, on + and − problems that training never saw (plain prompts and chats; operands 0–999, then
/// count / 4, at least 1 and at most 300, with operands 0–99), and on the multiplication table (all 169 facts, which are trained).
/// </summary>
internal static class EvalCommand
{
    public const int DefaultSeed = 2026;

    public static int Run(string[] argv)
    {
        var args = new CliArgs(argv, new HashSet<string>());
        string model = args.RequiredString("model");
        int count = args.Int("count", 1, ArithmeticTask.MaxHeldOutCount) ?? 2000;
        int seed = args.Int("seed", 0) ?? DefaultSeed;
        int threads = args.Int("threads", 0, 256) ?? 1;
        string dtype = args.String("dtype") ?? "float32";
        if (dtype is not ("float32" or "bfloat16" or "int8")) throw new CliException($"option --dtype: '{dtype}' is not one of float32, bfloat16, int8");
        args.EnsureAllUsed();
        if (!Directory.Exists(model)) throw new CliException($"option --model: folder '{model}' not found");

        using var engine = InferenceEngine.Load(new EngineOptions { ModelPath = model, Device = "cpu", Dtype = dtype, Threads = threads, MaxBatchSequences = 64 });
        var evaluator = ArithmeticEvaluator.ForServedModel(engine, HfTokenizer.FromPath(model));

        var heldOut = evaluator.Grade(ArithmeticTask.HeldOutSet(count, seed));
        Console.WriteLine(Line($"held-out + and - problems never seen in training (seed {seed})", heldOut));
        Console.WriteLine(Line("  plain prompts", heldOut.Only(PromptFormat.Plain)));
        Console.WriteLine(Line("  chat (ChatML)", heldOut.Only(PromptFormat.Chat)));
        // Users mostly ask about short numbers ("What is 37 + 58?"), which are rare among uniform 3-digit operands.
        var small = evaluator.Grade(ArithmeticTask.HeldOutSet(Math.Clamp(count / 4, 1, ArithmeticTask.MaxSmallHeldOutCount), seed, maxOperand: 99));
        Console.WriteLine(Line("held-out + and - problems with both operands 0-99", small));
        var table = evaluator.Grade(ArithmeticTask.MultiplicationTable(seed));
        Console.WriteLine(Line("multiplication table 0-12 (all 169 facts; trained, not held out)", table));
        foreach (var miss in heldOut.Answers.Concat(small.Answers).Concat(table.Answers).Where(a => !a.Correct).Take(40))
            Console.WriteLine($"  wrong: {miss.Example.Format} {Quote(miss.Example.Question)} -> {Quote(miss.Answer)} (expected {miss.Example.Problem.AnswerText})");
        return 0;
    }

    private static string Quote(string s) => System.Text.Json.JsonSerializer.Serialize(s, new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    private static string Line(string what, ArithmeticScore s) =>
        string.Create(CultureInfo.InvariantCulture, $"{what}: {s.Correct}/{s.Total} = {100 * s.Accuracy:F2}%");
}
