using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Tokenization;
using ActorQuery.Inference.Training;

namespace ActorQuery.Inference.Tests.DefaultModel;

/// <summary>The committed default model answers arithmetic it never saw, through the serving engine, greedy.</summary>
[Collection(TorchGlobalState.Name)]
public class DefaultModelAccuracyTests
{
    private static ArithmeticScore Grade(IReadOnlyList<ArithmeticExample> examples)
    {
        using var engine = InferenceEngine.Load(new EngineOptions { ModelPath = DefaultModelFolder.Path, Device = "cpu", Dtype = "float32", MaxBatchSequences = 64 });
        return ArithmeticEvaluator.ForServedModel(engine, HfTokenizer.FromPath(DefaultModelFolder.Path)).Grade(examples);
    }

    private static string Misses(ArithmeticScore s) =>
        string.Join("; ", s.Answers.Where(a => !a.Correct).Take(10).Select(a => $"{a.Example.Question} -> {a.Answer}"));

    [Theory]
    [InlineData(PromptFormat.Plain)]
    [InlineData(PromptFormat.Chat)]
    public void Answers_at_least_98_percent_of_200_held_out_problems(PromptFormat format)
    {
        var rng = new Random(99);
        var examples = ArithmeticTask.HeldOutSet(200, seed: 4242).Select(e => ArithmeticTask.Render(e.Problem, rng, format)).ToList();
        Assert.All(examples, e => Assert.True(ArithmeticTask.IsHeldOut(e.Problem)));
        var score = Grade(examples);
        Assert.True(score.Correct >= 196, $"{score.Correct}/200 correct; wrong: {Misses(score)}");
    }

    [Fact]
    public void Knows_the_multiplication_table()
    {
        var score = Grade(ArithmeticTask.MultiplicationTable(seed: 5));
        Assert.True(score.Accuracy >= 0.98, $"{score.Correct}/{score.Total} correct; wrong: {Misses(score)}");
    }
}
