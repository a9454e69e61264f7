using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.DefaultModel.Training;
using static TorchSharp.torch;

namespace ActorQuery.DefaultModel.Tests;

/// <summary>What training writes is what serving runs: the engine, loading the exported folder, computes the
/// training model's logits. Catches any disagreement on tensor names, layouts, RoPE or norms.</summary>
[Collection(TorchGlobalState.Name)]
public class TrainingModelExportTests
{
    [Fact]
    public void Engine_reproduces_the_training_models_logits_from_the_exported_folder()
    {
        var tokenizer = TrainingTokenizer.CreateDefault();
        manual_seed(7);
        using var model = new Qwen2TrainingModel(new TrainingModelConfig(tokenizer.VocabSize, HiddenSize: 64, NumLayers: 2, IntermediateSize: 96));
        using (no_grad())
            foreach (var p in model.parameters()) p.add_(randn_like(p) * 0.05); // norms and biases away from 1 and 0
        var dir = Directory.CreateTempSubdirectory("aq-export-").FullName;
        try
        {
            HfFolderWriter.Write(dir, model, tokenizer);
            var ids = tokenizer.Encode(ArithmeticTask.RenderChat("What is 37 + 58?"));
            using var engine = InferenceEngine.Load(new EngineOptions { ModelPath = dir, Device = "cpu", Dtype = "float32" });
            var actual = engine.ScoreAllPositions(ids);
            using var expected = model.forward(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count])); // [1, T, vocab]
            var e = expected.data<float>().ToArray();
            double maxDiff = 0;
            for (int t = 0; t < ids.Count; t++)
                for (int v = 0; v < tokenizer.VocabSize; v++)
                    maxDiff = Math.Max(maxDiff, Math.Abs(actual[t, v] - e[t * tokenizer.VocabSize + v]));
            Assert.True(maxDiff < 1e-4, $"max |logit difference| {maxDiff}");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
