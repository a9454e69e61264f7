using System.Text.Json;
using ActorQuery.Inference.Engine;

namespace ActorQuery.Host.Cli;

/// <summary><c>generate</c>: runs one sequence through the engine directly (no server) and prints the result.</summary>
internal static class GenerateCommand
{
    public static int Run(string[] args)
    {
        var a = new CliArgs(args, new HashSet<string>(EngineCli.Flags));
        var options = EngineCli.Options(a);
        var inputIds = a.IntList("input-ids") ?? throw new CliException("option --input-ids is required (e.g. --input-ids 1,2,3)");
        var sampling = new SamplingParams
        {
            MaxNewTokens = a.Int("max-new-tokens", 1, 1 << 20) ?? 32,
            Temperature = a.Float("temperature", 0f, 100f) ?? 0f,
            TopP = a.Float("top-p", 0f, 1f) ?? 1f,
            TopK = a.Int("top-k", 0) ?? 0,
            MinP = a.Float("min-p", 0f, 1f) ?? 0f,
            RepetitionPenalty = a.Float("repetition-penalty", 0f) ?? 1f,
            PresencePenalty = a.Float("presence-penalty", -2f, 2f) ?? 0f,
            FrequencyPenalty = a.Float("frequency-penalty", -2f, 2f) ?? 0f,
            Seed = a.Long("seed"),
            IgnoreEos = a.Flag("ignore-eos"),
        };
        bool json = a.Flag("json");
        a.EnsureAllUsed();
        try { sampling.Validate(); }
        catch (ArgumentException e) { throw new CliException($"option --{e.ParamName?.Replace('_', '-')}: {e.Message.Split(" (Parameter")[0]}"); }

        using var engine = EngineCli.Load(options);
        AdmitResult admit;
        try { admit = engine.TryAdd(new GenerationRequest(1, inputIds, sampling)); }
        catch (ArgumentException e) { throw new CliException($"option --input-ids: {e.Message.Split(" (Parameter")[0]}"); }
        if (!admit.Admitted) throw new CliException(admit.Reason ?? admit.Outcome.ToString());

        var output = new List<int>();
        FinishReason finish = FinishReason.Length;
        while (engine.HasPendingWork)
            foreach (var u in engine.Step().Updates)
            {
                output.Add(u.TokenId);
                if (u.Finished is { } f) finish = f;
            }

        var reason = finish == FinishReason.Stop ? "stop" : "length";
        if (json)
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["input_ids"] = inputIds, ["output_ids"] = output, ["finish_reason"] = reason,
            }));
        else
            Console.WriteLine($"output_ids: {string.Join(",", output)}\nfinish_reason: {reason}");
        return 0;
    }
}
