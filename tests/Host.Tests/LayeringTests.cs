using System.Text.Json;
using ActorQuery.TestSupport;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The layers of docs/architecture.md, read from what NuGet restored for each project (obj/project.assets.json
/// lists a project's whole dependency closure: packages and projects, direct or transitive). Building this test
/// project restores every src/ project, since the Host references them all.
/// </summary>
public sealed class LayeringTests
{
    private static readonly string[] TorchFree = ["Tokenization", "Contracts", "Actors", "Api"];

    [Theory]
    [MemberData(nameof(TorchFreeProjects))]
    public void Torch_free_projects_have_no_TorchSharp_in_their_dependency_closure(string project)
    {
        var libraries = Libraries(project);
        var torch = libraries.Where(l => l.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase)
                                         || l.StartsWith("libtorch", StringComparison.OrdinalIgnoreCase)
                                         || l.StartsWith("ActorQuery.Inference/", StringComparison.Ordinal)).ToList();
        Assert.True(torch.Count == 0, $"src/{project} reaches {string.Join(", ", torch)}");
    }

    public static TheoryData<string> TorchFreeProjects() => new(TorchFree);

    [Fact]
    public void Actors_and_the_engine_never_reach_ASP_NET_and_the_engine_never_reaches_Akka()
    {
        foreach (var project in new[] { "Tokenization", "Contracts", "Inference", "Actors" })
            Assert.False(FrameworkReferences(project).Contains("Microsoft.AspNetCore.App"), $"src/{project} references ASP.NET");
        foreach (var project in new[] { "Tokenization", "Contracts", "Inference" })
        {
            var akka = Libraries(project).Where(l => l.StartsWith("Akka", StringComparison.OrdinalIgnoreCase)).ToList();
            Assert.True(akka.Count == 0, $"src/{project} reaches {string.Join(", ", akka)}");
        }
    }

    [Fact]
    public void The_served_executable_carries_no_benchmark_or_training_code()
    {
        // SkiaSharp still arrives through TorchSharp's own package (its image I/O); ScottPlot is the bench tool's alone.
        var libraries = Libraries("Host");
        Assert.DoesNotContain(libraries, l => l.StartsWith("ScottPlot", StringComparison.OrdinalIgnoreCase)
                                              || l.StartsWith("ActorQuery.Bench/", StringComparison.Ordinal)
                                              || l.StartsWith("ActorQuery.DefaultModel/", StringComparison.Ordinal));
        var src = Path.Combine(RepoFixtures.Root, "src");
        string[] toolWords = ["Bench", "Soak", "Train", "Eval", "LoadGenerator"];
        var strays = Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
            .Select(Path.GetFileNameWithoutExtension)
            .Where(name => toolWords.Any(w => name!.Contains(w, StringComparison.Ordinal)))
            .ToList();
        Assert.True(strays.Count == 0, $"src/ holds tool code: {string.Join(", ", strays)}");
    }

    private static List<string> Libraries(string project)
    {
        using var doc = Assets(project);
        return doc.RootElement.GetProperty("libraries").EnumerateObject().Select(p => p.Name).ToList();
    }

    private static List<string> FrameworkReferences(string project)
    {
        using var doc = Assets(project);
        var frameworks = doc.RootElement.GetProperty("project").GetProperty("frameworks");
        return frameworks.EnumerateObject()
            .SelectMany(f => f.Value.TryGetProperty("frameworkReferences", out var refs) ? refs.EnumerateObject().Select(r => r.Name) : [])
            .ToList();
    }

    private static JsonDocument Assets(string project)
    {
        var path = Path.Combine(RepoFixtures.Root, "src", project, "obj", "project.assets.json");
        Assert.True(File.Exists(path), $"{path} is missing: restore the solution first");
        return JsonDocument.Parse(File.ReadAllText(path));
    }
}
