using System.Text.Json;
using ActorQuery.Host.Cli;

namespace ActorQuery.Host.Tests.Cli;

/// <summary>The <c>tokenize</c> verb on the Qwen tokenizer shipped in models/shapes/qwen2.5-0.5b.</summary>
public sealed class TokenizeCommandTests : IDisposable
{
    private static readonly string ModelFolder = FindModelFolder();
    private readonly string _dir = Directory.CreateTempSubdirectory("tokenize-test").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int[] Ids, string Text) RunJson(params string[] args)
    {
        var output = new StringWriter();
        Assert.Equal(0, TokenizeCommand.Run(args, output));
        using var doc = JsonDocument.Parse(output.ToString());
        return (doc.RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                doc.RootElement.GetProperty("text").GetString()!);
    }

    private string WriteFile(string content)
    {
        var path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void Prints_the_ids_and_the_input_text_as_json()
    {
        var (ids, text) = RunJson("--tokenizer", ModelFolder, "--text", "Hello, world!", "--json");
        Assert.Equal([9707, 11, 1879, 0], ids);
        Assert.Equal("Hello, world!", text);
    }

    [Fact]
    public void Renders_a_messages_file_with_the_chat_template_and_prints_the_prompt_and_its_ids()
    {
        var file = WriteFile("""[{"role": "user", "content": "What is the capital of France?"}]""");
        var (ids, text) = RunJson("--tokenizer", Path.Combine(ModelFolder, "tokenizer.json"), "--messages-file", file, "--json");
        Assert.Equal("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n", text);
        Assert.Equal([151644, 872, 198, 3838, 374, 279, 6722, 315, 9625, 30, 151645, 198, 151644, 77091, 198], ids);
    }

    [Theory]
    [InlineData("--text", "a", "--messages-file", "m.json")]
    [InlineData("--json")]
    public void Needs_exactly_one_input(params string[] rest)
    {
        var e = Assert.Throws<CliException>(() => TokenizeCommand.Run(["--tokenizer", ModelFolder, .. rest], TextWriter.Null));
        Assert.Contains("--text", e.Message);
    }

    [Fact]
    public void Needs_a_tokenizer_and_names_a_wrong_path()
    {
        Assert.Contains("--tokenizer", Assert.Throws<CliException>(() => TokenizeCommand.Run(["--text", "a"], TextWriter.Null)).Message);
        var e = Assert.Throws<CliException>(() => TokenizeCommand.Run(["--tokenizer", "/no/such/model", "--text", "a"], TextWriter.Null));
        Assert.Contains("/no/such/model", e.Message);
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("""{"role": "user"}""", "JSON array")]
    [InlineData("""[{"role": "user"}]""", "messages[0].content")]
    [InlineData("""[{"role": "user", "content": "a"}, {"content": "b"}]""", "messages[1].role")]
    [InlineData("""[]""", "no messages")]
    public void Names_what_is_wrong_in_a_messages_file(string content, string expected)
    {
        var file = WriteFile(content);
        var e = Assert.Throws<CliException>(() => TokenizeCommand.Run(["--tokenizer", ModelFolder, "--messages-file", file], TextWriter.Null));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Names_an_unknown_role()
    {
        var file = WriteFile("""[{"role": "wizard", "content": "a"}]""");
        var e = Assert.Throws<CliException>(() => TokenizeCommand.Run(["--tokenizer", ModelFolder, "--messages-file", file], TextWriter.Null));
        Assert.Contains("'wizard'", e.Message);
    }

    private static string FindModelFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "models", "shapes", "qwen2.5-0.5b");
            if (File.Exists(Path.Combine(candidate, "tokenizer.json"))) return candidate;
        }
        throw new DirectoryNotFoundException("models/shapes/qwen2.5-0.5b not found above " + AppContext.BaseDirectory);
    }
}
