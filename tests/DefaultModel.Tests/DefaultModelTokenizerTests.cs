using ActorQuery.Tokenization;
using ActorQuery.DefaultModel.Training;

namespace ActorQuery.DefaultModel.Tests;

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

    [Theory]
    [InlineData("407", new[] { "407" })]
    [InlineData("1707", new[] { "1", "707" })]
    [InlineData("1005", new[] { "1", "005" })]
    [InlineData("-7", new[] { "-", "7" })]
    [InlineData("1234567", new[] { "1", "234", "567" })]
    [InlineData("37 加 58", new[] { "37", " 加", " ", "58" })]
    public void Numbers_split_into_groups_of_three_digits_from_the_right(string text, string[] pieces)
    {
        var ids = Served.Encode(text);
        Assert.Equal(pieces, ids.Select(id => Served.Decode([id])).ToArray());
    }

    [Fact]
    public void Both_end_tokens_end_a_turn()
    {
        Assert.Contains(Trained.ImEndId, Served.EndOfTurnTokenIds);
        Assert.Contains(Trained.EndOfTextId, Served.EndOfTurnTokenIds);
    }
}
