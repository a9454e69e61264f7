using ActorQuery.Inference.Checkpoint;
using ActorQuery.Inference.Training;

namespace ActorQuery.Inference.Tests.DefaultModel;

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
            // Twice with the digit losses, once without: the same seed gives the same weights, and the probes'
            // gradients do reach the model.
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
                    return a.eq(b).all().item<bool>();
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
}
