using System.Text.Json;
using ActorQuery.Host.Cli;

namespace ActorQuery.Host.Tests.Cli;

/// <summary>The <c>generate</c> verb: one sequence through the real engine, printed as JSON.</summary>
public sealed class GenerateCommandTests
{
    private static readonly string Model = Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2-tiny-f32");

    [Fact]
    public void Prints_input_ids_output_ids_and_finish_reason_matching_the_reference_greedy_ids()
    {
        var output = new StringWriter();
        Assert.Equal(0, GenerateCommand.Run(["--model", Model, "--input-ids", "180", "--max-new-tokens", "24",
            "--ignore-eos", "--dtype", "float32", "--device", "cpu", "--threads", "1", "--json"], output));
        using var doc = JsonDocument.Parse(output.ToString());
        Assert.Equal([180], doc.RootElement.GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()));
        // reference.json of qwen2-tiny-f32, case 0 (Hugging Face transformers' greedy ids)
        Assert.Equal([301, 301, 301, 301, 301, 301, 150, 357, 357, 357, 47, 47, 47, 47, 47, 47, 58, 58, 58, 58, 58, 58, 58, 58],
            doc.RootElement.GetProperty("output_ids").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal("length", doc.RootElement.GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData("--model needs a value", "--model")]
    [InlineData("unexpected argument 'extra'", "extra")]
    [InlineData("--model is required", "--input-ids", "1")]
    [InlineData("exactly one of", "--model", "M")]
    [InlineData("'x' is not a non-negative integer", "--model", "M", "--input-ids", "1,x")]
    [InlineData("--top-p: '2' is not a number in [0, 1]", "--model", "M", "--input-ids", "1", "--top-p", "2")]
    [InlineData("--temperature: '-1'", "--model", "M", "--input-ids", "1", "--temperature", "-1")]
    [InlineData("--max-new-tokens: '0'", "--model", "M", "--input-ids", "1", "--max-new-tokens", "0")]
    [InlineData("unknown option --bogus", "--model", "M", "--input-ids", "1", "--bogus", "3")]
    [InlineData("unknown dtype 'fp8'", "--model", "M", "--input-ids", "1", "--dtype", "fp8")]
    [InlineData("model folder '/nonexistent' not found", "--model", "/nonexistent", "--input-ids", "1")]
    [InlineData("outside the vocabulary", "--model", "M", "--input-ids", "99999", "--device", "cpu")]
    public void Bad_arguments_fail_with_one_line_naming_the_problem(string expected, params string[] args)
    {
        args = args.Select(a => a == "M" ? Model : a).ToArray();
        var e = Assert.Throws<CliException>(() => GenerateCommand.Run(args, new StringWriter()));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
