namespace ActorQuery.DefaultModel.Tests;

/// <summary>models/default in the repository (the committed weights), found by walking up from the test assembly.</summary>
public static class DefaultModelFolder
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "models", "default");
            if (File.Exists(System.IO.Path.Combine(candidate, "config.json"))) return candidate;
        }
        throw new DirectoryNotFoundException($"models/default not found above {AppContext.BaseDirectory}");
    }
}
