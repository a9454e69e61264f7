using System.Text.RegularExpressions;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

/// <summary>The example alerting rules in deploy/prometheus/ name only series this server exports: a renamed metric or label
/// value would otherwise leave a rule that never fires.</summary>
public sealed class PrometheusRulesTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private static readonly string RulesFile = Path.Combine(RepoFixtures.Root, "deploy", "prometheus", "actorquery-alerts.yml");

    [Fact]
    public async Task Every_series_the_example_rules_select_is_in_the_scrape()
    {
        string scrape = await shared.Server.Http.GetStringAsync("/metrics");
        var exported = scrape.Split('\n').Where(l => l.StartsWith("actorquery_", StringComparison.Ordinal)).ToList();
        var exprs = File.ReadAllLines(RulesFile).Where(l => l.TrimStart().StartsWith("expr:", StringComparison.Ordinal)).ToList();
        Assert.True(exprs.Count >= 8, $"only {exprs.Count} rules in {RulesFile}");

        var missing = new List<string>();
        foreach (Match m in Regex.Matches(string.Join("\n", exprs), @"(actorquery_[a-z_]+)(?:\{([^}]*)\})?"))
        {
            string name = m.Groups[1].Value;
            var lines = exported.Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) || l.StartsWith(name + " ", StringComparison.Ordinal)).ToList();
            if (lines.Count == 0) { missing.Add(name); continue; }
            foreach (Match label in Regex.Matches(m.Groups[2].Value, @"(\w+)(=~|=)""([^""]*)"""))
                foreach (var value in label.Groups[2].Value == "=~" ? label.Groups[3].Value.Split('|') : [label.Groups[3].Value])
                    if (!lines.Any(l => l.Contains($"{label.Groups[1].Value}=\"{value}\"", StringComparison.Ordinal)))
                        missing.Add($"{name}{{{label.Groups[1].Value}=\"{value}\"}}");
        }
        Assert.True(missing.Count == 0, "the rules select series the server does not export: " + string.Join(", ", missing));
    }
}
