namespace ActorQuery.DefaultModel.Tests;

/// <summary>models/default in the repository (the committed weights).</summary>
public static class DefaultModelFolder
{
    public static string Path { get; } = System.IO.Path.Combine(RepoFixtures.Root, "models", "default");
}
