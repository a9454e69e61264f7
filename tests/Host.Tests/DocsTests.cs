using System.Text.RegularExpressions;
using ActorQuery.TestSupport;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The docs are a map of the repository: every path they name in backticks (`src/...`, `tests/...`, `hocon/...`)
/// must exist, so that a file moved or renamed without its docs fails here instead of misleading a reader.
/// </summary>
public sealed partial class DocsTests
{
    private static readonly string[] Roots = ["src/", "tools/", "tests/", "hocon/", "scripts/", "models/", "deploy/", "docs/", "bench/", "build/", ".ci/"];

    [Theory]
    [InlineData("docs/architecture.md")]
    [InlineData("docs/operations.md")]
    [InlineData("docs/performance.md")]
    [InlineData("README.md")]
    public void Every_repository_path_a_document_names_exists(string document)
    {
        var text = File.ReadAllText(Path.Combine(RepoFixtures.Root, document));
        var paths = RepoPaths(text).ToList();
        var missing = paths.Where(p => !File.Exists(Full(p)) && !Directory.Exists(Full(p))).ToList();
        Assert.True(missing.Count == 0, $"{document} names paths that do not exist: {string.Join(", ", missing)}");
    }

    [Fact]
    public void The_architecture_map_names_the_files_of_every_project()
    {
        var text = File.ReadAllText(Path.Combine(RepoFixtures.Root, "docs", "architecture.md"));
        var named = RepoPaths(text).ToHashSet();
        foreach (var project in new[] { "src/Tokenization", "src/Contracts", "src/Inference", "src/Actors", "src/Api", "src/Host",
                                        "tools/ActorQuery.Bench", "tools/ActorQuery.DefaultModel" })
            Assert.True(named.Any(p => p.StartsWith(project + "/", StringComparison.Ordinal)),
                $"docs/architecture.md names no file of {project}");
    }

    /// <summary>Backticked tokens that start with a repository folder, without placeholders (YYYY, N, *, …).</summary>
    private static IEnumerable<string> RepoPaths(string markdown) =>
        Backticked().Matches(markdown).Select(m => m.Groups[1].Value.Trim())
            .Select(p => p.Split(' ', ':', '(')[0].TrimEnd('.', ',', ')'))
            .Where(p => Roots.Any(r => p.StartsWith(r, StringComparison.Ordinal)))
            .Where(p => !Placeholder().IsMatch(p))
            .Distinct();

    private static string Full(string path) => Path.Combine(RepoFixtures.Root, path.Replace('/', Path.DirectorySeparatorChar));

    [GeneratedRegex("`([^`\\n]+)`")]
    private static partial Regex Backticked();

    [GeneratedRegex("YYYY|HHMMSS|[*…{}<>]|-N\\b|/N\\b|\\bNAME\\b|\\bi\\.log")]
    private static partial Regex Placeholder();
}
