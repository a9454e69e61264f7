using System.Text.Json;
using ActorQuery.Tokenization;

namespace ActorQuery.Tokenization.Tests;

/// <summary>The Qwen3 tokenizer and Hugging Face's reference outputs (loaded once: ~1 s). The tokenizer's files are the ones
/// the Qwen2.5-0.5B shape ships (models/shapes/qwen2.5-0.5b, the same 11 MB tokenizer.json, kept once in the repository);
/// the reference outputs are in tests/fixtures/tokenizer-reference.</summary>
public static class TokenizerFixtures
{
    /// <summary>tests/fixtures, found by walking up from the test binaries.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The Qwen3 tokenizer's folder (its tokenizer.json and tokenizer_config.json with the chat template).</summary>
    public static string QwenFolder { get; } = Path.GetFullPath(Path.Combine(Root, "..", "..", "models", "shapes", "qwen2.5-0.5b"));

    public static string QwenTokenizerJson => Path.Combine(QwenFolder, "tokenizer.json");

    private static readonly Lazy<HfTokenizer> QwenTokenizer = new(() => HfTokenizer.FromPath(QwenFolder));
    private static readonly Lazy<JsonElement> Reference = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, "tokenizer-reference", "qwen3.json"))).RootElement);

    public static HfTokenizer Qwen => QwenTokenizer.Value;

    public sealed record Case(string Text, int[] Ids, string Decoded)
    {
        public override string ToString() => JsonSerializer.Serialize(Text);
    }

    public sealed record Chat(ChatMessage[] Messages, string Text, int[] Ids);

    public static IReadOnlyList<Case> Cases => Reference.Value.GetProperty("cases").EnumerateArray()
        .Select(c => new Case(c.GetProperty("text").GetString()!, Ids(c), c.GetProperty("decoded").GetString()!)).ToList();

    public static IReadOnlyList<Chat> Chats => Reference.Value.GetProperty("chat").EnumerateArray()
        .Select(c => new Chat(
            c.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToArray(),
            c.GetProperty("text").GetString()!,
            Ids(c)))
        .ToList();

    /// <summary>xunit data: the index of each reference case (the case prints as its text).</summary>
    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Cases.Count; i++) data.Add(i);
        return data;
    }

    private static int[] Ids(JsonElement e) => e.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures", "tokenizer-reference");
            if (Directory.Exists(candidate)) return Path.Combine(dir.FullName, "tests", "fixtures");
        }
        throw new DirectoryNotFoundException("tests/fixtures not found above " + AppContext.BaseDirectory);
    }
}
