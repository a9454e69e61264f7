using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;

namespace ActorQuery.Inference.Tests;

/// <summary>The engine against Hugging Face transformers' own outputs for the same weights.</summary>
[Collection(TorchGlobalState.Name)]
public class ReferenceFixtureTests
{
    private static readonly Dictionary<string, InferenceEngine> Engines = new();

    private static InferenceEngine Engine(string model)
    {
        lock (Engines)
        {
            if (!Engines.TryGetValue(model, out var e))
                Engines[model] = e = InferenceEngine.Load(new EngineOptions { ModelPath = Fixtures.Dir(model), Dtype = "float32", Device = "cpu" });
            return e;
        }
    }

    [Theory]
    [MemberData(nameof(Fixtures.AllCases), MemberType = typeof(Fixtures))]
    public void Logits_of_every_position_match_the_reference_within_1e3(string model, int index)
    {
        var c = Fixtures.Cases(model)[index];
        var expected = Fixtures.Logits(model, index, out var shape);
        var actual = Engine(model).ScoreAllPositions(c.InputIds);
        Assert.Equal(shape[0], actual.GetLength(0));
        Assert.Equal(shape[1], actual.GetLength(1));
        double maxDiff = 0;
        var perPos = new List<string>();
        for (int t = 0; t < shape[0]; t++)
        {
            double m = 0, mag = 0;
            for (int v = 0; v < shape[1]; v++)
            {
                m = Math.Max(m, Math.Abs(actual[t, v] - expected[t * shape[1] + v]));
                mag = Math.Max(mag, Math.Abs(expected[t * shape[1] + v]));
            }
            perPos.Add($"{t}:{m:E1}/{mag:F1}");
            maxDiff = Math.Max(maxDiff, m);
        }
        Assert.True(maxDiff <= 1e-3, $"{model} case {index}: max |logit diff| = {maxDiff:E2} {string.Join(" ", perPos)}");
    }

    [Theory]
    [MemberData(nameof(Fixtures.AllCases), MemberType = typeof(Fixtures))]
    public void Greedy_ids_through_the_kv_cache_match_the_reference(string model, int index)
    {
        var c = Fixtures.Cases(model)[index];
        var engine = Engine(model);
        var p = SamplingParams.Greedy(c.GreedyIds.Length) with { IgnoreEos = true };
        Assert.True(engine.TryAdd(new GenerationRequest(1000 + index, c.InputIds, p)).Added);
        var got = new List<int>();
        FinishReason? finish = null;
        while (finish is null)
        {
            var updates = engine.Step().Updates;
            if (updates.Count == 0) continue;                     // a prefill chunk of a long prompt: no token yet
            var u = Assert.Single(updates);
            got.Add(u.TokenId);
            finish = u.Finished;
        }
        Assert.Equal(c.GreedyIds, got);
        Assert.Equal(FinishReason.Length, finish);
        Assert.Equal((0, 0), (engine.RunningSequences, engine.WaitingSequences));
    }
}
