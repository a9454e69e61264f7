using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization;

namespace ActorQuery.DefaultModel.Training;

/// <summary>One graded answer.</summary>
public sealed record GradedAnswer(ArithmeticExample Example, string Answer, bool Correct);

/// <summary>Accuracy of a set of graded answers, split by prompt format.</summary>
public sealed record ArithmeticScore(IReadOnlyList<GradedAnswer> Answers)
{
    public int Total => Answers.Count;
    public int Correct => Answers.Count(a => a.Correct);
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;
    public ArithmeticScore Only(PromptFormat f) => new(Answers.Where(a => a.Example.Format == f).ToList());
}

/// <summary>
/// Asks a served model the task's questions through the engine (greedy, as a user would get them) and grades
/// the answers: correct means exactly the number, then an end-of-turn token.
/// </summary>
public sealed class ArithmeticEvaluator(IGenerationEngine engine, Func<ArithmeticExample, IReadOnlyList<int>> encodePrompt, Func<IReadOnlyList<int>, string> decode)
{
    private const int MaxNewTokens = 8; // "-999" or "1998" and the end token fit with room to spare

    /// <summary>Asks as serving does: a plain prompt is encoded as is; a chat goes through the model's own chat
    /// template (tokenizer_config.json), then the tokenizer.</summary>
    public static ArithmeticEvaluator ForServedModel(IGenerationEngine engine, ITokenizer tokenizer) =>
        new(engine,
            e => tokenizer.Encode(e.Format == PromptFormat.Chat ? tokenizer.ApplyChatTemplate(e.Messages, addGenerationPrompt: true) : e.Question),
            ids => tokenizer.Decode(ids));

    public ArithmeticScore Grade(IReadOnlyList<ArithmeticExample> examples)
    {
        var generated = examples.Select(_ => new List<int>()).ToArray();
        var stopped = new bool[examples.Count];
        var eos = engine.Model.EosTokenIds.ToHashSet();
        int next = 0;
        while (next < examples.Count || engine.HasPendingWork)
        {
            // Keep the engine's queue topped up, so it batches as it would under load, without encoding every
            // example up front: one waiting sequence is enough to fill the next free place.
            while (next < examples.Count && engine.WaitingSequences == 0)
            {
                var added = engine.TryAdd(new GenerationRequest(next, encodePrompt(examples[next]), SamplingParams.Greedy(MaxNewTokens)));
                if (!added.Added) throw new InvalidOperationException($"example {next} refused: {added.Reason}");
                next++;
            }
            foreach (var u in engine.Step().Updates)
            {
                if (eos.Contains(u.TokenId) && u.Finished == FinishReason.Stop) stopped[u.SequenceId] = true;
                else generated[u.SequenceId].Add(u.TokenId);
            }
        }
        return new ArithmeticScore(examples.Select((e, i) =>
        {
            string answer = decode(generated[i]);
            return new GradedAnswer(e, stopped[i] ? answer : answer + " (no end of turn)", stopped[i] && answer == e.Problem.AnswerText);
        }).ToList());
    }
}
