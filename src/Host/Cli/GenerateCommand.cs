using System.Text.Json;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization;

namespace ActorQuery.Host.Cli;

/// <summary><c>generate</c>: runs one sequence through the engine directly (no server) and prints the result.</summary>
public static class GenerateCommand
{
    public static int Run(string[] args) => Run(args, Console.Out);

    public static int Run(string[] args, TextWriter stdout)
    {
        var a = new CliArgs(args, new HashSet<string>(EngineCli.Flags));
        var options = EngineCli.Options(a);
        var givenIds = a.IntList("input-ids");
        var prompt = a.String("prompt");
        var messagesFile = a.String("messages-file");
        var stop = a.String("stop");
        if ((givenIds is null ? 0 : 1) + (prompt is null ? 0 : 1) + (messagesFile is null ? 0 : 1) != 1)
            throw new CliException("give exactly one of --input-ids 1,2,3, --prompt TEXT or --messages-file FILE");
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

        // Text in needs the model's tokenizer; ids in use it only to print text when the folder has one.
        bool textIn = givenIds is null;
        HfTokenizer? tokenizer = textIn || File.Exists(Path.Combine(options.ModelPath, "tokenizer.json"))
            ? EngineCli.LoadTokenizer(options.ModelPath) : null;
        IReadOnlyList<int> inputIds;
        try
        {
            inputIds = givenIds
                ?? (prompt is not null
                    ? tokenizer!.Encode(prompt, addSpecialTokens: true)
                    : tokenizer!.Encode(tokenizer.ApplyChatTemplate(TokenizeCommand.ReadMessages(messagesFile!))));
        }
        catch (ChatTemplateException e) { throw new CliException($"--messages-file: {e.Message}"); }
        if (inputIds.Count == 0) throw new CliException("option --prompt: the prompt is empty");
        if (tokenizer is not null && !sampling.IgnoreEos)
            sampling = sampling with { StopTokenIds = tokenizer.EndOfTurnTokenIds }; // <|im_end|>, <|eot_id|> end a turn

        using var engine = EngineCli.Load(options);
        AddResult added;
        try { added = engine.TryAdd(new GenerationRequest(1, inputIds, sampling)); }
        catch (ArgumentException e) { throw new CliException($"option --input-ids: {e.Message.Split(" (Parameter")[0]}"); }
        if (!added.Added) throw new CliException(added.Reason ?? added.Outcome.ToString());

        var output = new List<int>();
        var text = new System.Text.StringBuilder();
        var detokenizer = tokenizer?.CreateStreamingDetokenizer();
        var stops = new StopStringMatcher(stop is null ? [] : [stop]);
        FinishReason finish = FinishReason.Length;
        while (engine.HasPendingWork)
            foreach (var u in engine.Step().Updates)
            {
                output.Add(u.TokenId);
                if (u.Finished is { } f) finish = f;
                if (detokenizer is null) continue;
                text.Append(stops.Push(detokenizer.Push(u.TokenId)));
                if (u.Finished is not null) text.Append(stops.Push(detokenizer.Flush())).Append(stops.Flush());
                if (stops.Stopped) { engine.Remove(1); finish = FinishReason.Stop; }
            }

        var reason = finish == FinishReason.Stop ? "stop" : "length";
        if (json)
        {
            var result = new Dictionary<string, object>
            {
                ["input_ids"] = inputIds, ["output_ids"] = output, ["finish_reason"] = reason,
            };
            if (detokenizer is not null) result["text"] = text.ToString();
            stdout.WriteLine(JsonSerializer.Serialize(result, EngineCli.Json));
        }
        else
            stdout.WriteLine(detokenizer is null
                ? $"output_ids: {string.Join(",", output)}\nfinish_reason: {reason}"
                : $"{text}\n[finish_reason: {reason}, {output.Count} tokens]");
        return 0;
    }
}
