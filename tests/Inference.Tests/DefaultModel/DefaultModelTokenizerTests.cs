using ActorQuery.Inference.Tokenization;
using ActorQuery.Inference.Training;

namespace ActorQuery.Inference.Tests.DefaultModel;

/// <summary>The serving tokenizer (HfTokenizer, reading models/default) sees exactly what training fed the model.</summary>
public class DefaultModelTokenizerTests
{
    private static readonly HfTokenizer Served = HfTokenizer.FromPath(DefaultModelFolder.Path);
    private static readonly TrainingTokenizer Trained = TrainingTokenizer.CreateDefault();

    private static IEnumerable<ArithmeticExample> Samples()
    {
        var rng = new Random(31);
        return Enumerable.Range(0, 1000).Select(_ => ArithmeticTask.NextTraining(rng))
            .Concat(ArithmeticTask.HeldOutSet(200, 7)).Concat(ArithmeticTask.MultiplicationTable(3));
    }

    [Fact]
    public void Serving_tokenizer_gives_the_training_ids_and_decodes_back()
    {
        foreach (var e in Samples())
        {
            foreach (var text in new[] { e.Prompt, e.Completion })
            {
                var ids = Served.Encode(text);
                Assert.Equal(Trained.Encode(text), ids);
                Assert.Equal(text, Served.Decode(ids));
            }
        }
    }

    [Fact]
    public void Chat_template_renders_what_training_used()
    {
        Assert.True(Served.HasChatTemplate);
        foreach (var e in Samples().Where(e => e.Format == PromptFormat.Chat))
            Assert.Equal(e.Prompt, Served.ApplyChatTemplate(e.Messages, addGenerationPrompt: true));
    }

    [Fact]
    public void Digits_are_single_tokens_and_both_end_tokens_end_a_turn()
    {
        Assert.Equal(3, Served.Encode("407").Count);
        Assert.Equal(2, Served.Encode("-7").Count);
        Assert.Contains(Trained.ImEndId, Served.EndOfTurnTokenIds);
        Assert.Contains(Trained.EndOfTextId, Served.EndOfTurnTokenIds);
    }
}
