using System.Text.Json;

namespace ActorQuery.TestSupport;

/// <summary>The reference fixtures in tests/fixtures/, found from the repository root (the folder with ActorQuery.sln).</summary>
public static class RepoFixtures
{
    public static string Root { get; } = FindRoot();

    public static string Model(string name) => Path.Combine(Root, "tests", "fixtures", name);

    /// <summary>Case 0 of a model's reference.json: the prompt ids and the next 24 greedy ids (no stop at EOS).</summary>
    public static (int[] Prompt, int[] Greedy) FirstCase(string model)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Model(model), "reference.json")));
        var c = doc.RootElement.GetProperty("cases")[0];
        return (c.GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                c.GetProperty("greedy_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray());
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ActorQuery.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no ActorQuery.sln above {AppContext.BaseDirectory}");
    }
}
