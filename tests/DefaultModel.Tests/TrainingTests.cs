using ActorQuery.Inference.Checkpoint;
using ActorQuery.DefaultModel.Training;
using static TorchSharp.torch;

namespace ActorQuery.DefaultModel.Tests;

/// <summary>The <c>train</c> verb's pieces: the auxiliary digit targets are the written method's steps, and a
/// run with them is reproducible and exports a plain Qwen2 checkpoint (the probes stay behind).</summary>
[Collection(TorchGlobalState.Name)]
public class TrainingTests
{
    [Theory]
    // a, op, b: a's units/tens/hundreds, b's, op, sign, carry into tens, carry into hundreds, then the answer's
    // sign, thousands, hundreds, tens, units.
    [InlineData(957, ArithmeticOp.Add, 68, new long[] { 7, 5, 9, 8, 6, 0, 0, 0, 1, 1, 0, 1, 0, 2, 5 })] // 1025
    [InlineData(123, ArithmeticOp.Add, 456, new long[] { 3, 2, 1, 6, 5, 4, 0, 0, 0, 0, 0, 0, 5, 7, 9 })] // 579
    [InlineData(512, ArithmeticOp.Subtract, 38, new long[] { 2, 1, 5, 8, 3, 0, 1, 0, 1, 1, 0, 0, 4, 7, 4 })] // 474: borrows 12-8, 10-3
    [InlineData(38, ArithmeticOp.Subtract, 512, new long[] { 8, 3, 0, 2, 1, 5, 1, 1, 1, 1, 1, 0, 4, 7, 4 })] // -474: 512 - 38's borrows
    [InlineData(905, ArithmeticOp.Subtract, 901, new long[] { 5, 0, 9, 1, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 4 })] // 4
    [InlineData(12, ArithmeticOp.Multiply, 12, new long[] { 2, 1, 0, 2, 1, 0, 2, 0, -100, -100, 0, 0, 1, 4, 4 })] // 144: no carries
    public void Digit_targets_are_the_written_methods_steps(int a, ArithmeticOp op, int b, long[] expected)
    {
        Assert.Equal(DigitSupervision.Columns, expected.Length);
        Assert.Equal(expected, DigitSupervision.Targets(new ArithmeticProblem(a, op, b)));
    }

    [Fact]
    public void Training_with_digit_losses_is_reproducible_and_exports_only_the_qwen2_weights()
    {
        var tokenizer = TrainingTokenizer.CreateDefault();
        var config = new TrainingModelConfig(tokenizer.VocabSize, HiddenSize: 48, NumLayers: 2, NumHeads: 2, NumKeyValueHeads: 1, IntermediateSize: 96);
        var options = new TrainingOptions(Steps: 12, BatchSize: 16, WarmupSteps: 2, EvalEvery: 1000, EvalCount: 8, DigitLossWeight: 1);
        var dirs = Enumerable.Range(0, 3).Select(_ => Directory.CreateTempSubdirectory("aq-train-").FullName).ToArray();
        try
        {
            // Twice with the digit losses, once without: the same seed gives the same weights, and the digit
            // losses change training (that their gradients reach the first layer is the next test's).
            for (int run = 0; run < 3; run++)
            {
                using var model = new ArithmeticTrainer(tokenizer, _ => { }).Train(config, run < 2 ? options : options with { DigitLossWeight = 0 });
                HfFolderWriter.Write(dirs[run], model, tokenizer);
            }
            var files = dirs.Select(d => new SafetensorsFile(Path.Combine(d, "model.safetensors"))).ToArray();
            try
            {
                Assert.All(files[0].Entries.Keys, name => Assert.StartsWith("model.", name, StringComparison.Ordinal));
                Assert.Equal(2 + 2 * 12, files[0].Entries.Count); // embedding, final norm, 12 tensors a layer: no probe
                bool Same(SafetensorsFile x, SafetensorsFile y) => x.Entries.All(e =>
                {
                    using var a = x.Read(e.Value);
                    using var b = y.Read(y.Entries[e.Key]);
                    using var equal = a.eq(b).all();
                    return equal.item<bool>();
                });
                Assert.True(Same(files[0], files[1]), "two runs with the same seed and options differ");
                Assert.False(Same(files[0], files[2]), "the digit losses changed no weight");
            }
            finally
            {
                foreach (var f in files) f.Dispose();
            }
        }
        finally
        {
            foreach (var dir in dirs) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_probes_gradients_reach_the_embedding_and_the_first_layer()
    {
        var tokenizer = TrainingTokenizer.CreateDefault();
        manual_seed(11);
        var config = new TrainingModelConfig(tokenizer.VocabSize, HiddenSize: 48, NumLayers: 4, NumHeads: 2, NumKeyValueHeads: 1, IntermediateSize: 96);
        using var model = new Qwen2TrainingModel(config);
        using var digits = new DigitSupervision(config.HiddenSize);
        using var scope = NewDisposeScope();
        var problem = new ArithmeticProblem(957, ArithmeticOp.Add, 68);
        var ids = tokenizer.Encode("957 + 68 =");
        var states = model.HiddenStates(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Count]));
        var last = states.Select(s => s[0, ^1].unsqueeze(0)).ToArray(); // the position that predicts the answer
        var wanted = DigitSupervision.StateIndices(config.NumLayers).Select(i => last[i]).ToList();
        digits.Loss(wanted, tensor(DigitSupervision.Targets(problem), [1, DigitSupervision.Columns])).backward();
        foreach (var name in new[] { "embed_tokens.weight", "layers.0.self_attn.q_proj.weight", "layers.0.mlp.up_proj.weight" })
        {
            var grad = model.named_parameters().Single(p => p.name == name).parameter.grad;
            Assert.True(grad is not null && grad.abs().sum().item<float>() > 0, $"no gradient reached {name}");
        }
    }

    [Theory]
    [InlineData(1, new[] { 0, 0, 1 })]
    [InlineData(4, new[] { 1, 2, 4 })] // the default model: after layer 2, after layer 3, after the final norm
    [InlineData(8, new[] { 3, 6, 8 })]
    public void Probe_groups_read_halfway_up_one_below_the_top_and_the_top(int layers, int[] expected) =>
        Assert.Equal(expected, DigitSupervision.StateIndices(layers));

    [Fact]
    public void Held_out_sets_refuse_sizes_they_could_not_draw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ArithmeticTask.HeldOutSet(ArithmeticTask.MaxHeldOutCount + 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ArithmeticTask.HeldOutSet(301, 1, maxOperand: 99));
        Assert.Throws<ArgumentOutOfRangeException>(() => ArithmeticTask.HeldOutSet(10, 1, maxOperand: 98));
        Assert.Throws<ArgumentOutOfRangeException>(() => ArithmeticTask.HeldOutSet(0, 1));
        Assert.Equal(300, ArithmeticTask.HeldOutSet(300, 1, maxOperand: 99).Select(e => e.Problem).Distinct().Count());
    }
}
