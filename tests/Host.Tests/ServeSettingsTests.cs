using System.Text.RegularExpressions;
using ActorQuery.Host.Serve;
using ActorQuery.TestSupport;
using Microsoft.Extensions.Configuration;

namespace ActorQuery.Host.Tests;

/// <summary>The one table of settings: its limits on the finer settings, and the README's tables as its copy.</summary>
public sealed class ServeSettingsTests
{
    private static OptionsException Refused(params (string Key, string Value)[] settings)
    {
        var config = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.ToDictionary(s => $"ActorQuery:{s.Key}", s => (string?)s.Value))
            .Build();
        return Assert.Throws<OptionsException>(() => ServeOptions.From(config));
    }

    [Fact]
    public void Invalid_actor_options_are_refused_naming_the_field()
    {
        Assert.Contains("ActorQuery:MaxInFlight", Refused(("MaxInFlight", "-1")).Message);
        var marks = Refused(("CleanupMark", "0.8"), ("PauseMark", "0.6")).Message;
        Assert.Contains("CleanupMark", marks);
        Assert.Contains("PauseMark", marks);
        Assert.Contains("ActorQuery:Faults:OomEveryNthStep", Refused(("Faults:OomEveryNthStep", "-1")).Message);
        Assert.Contains("ActorQuery:Faults:OomAtSteps", Refused(("Faults:OomAtSteps:0", "0")).Message);
        Assert.Contains("ActorQuery:Workers:BackoffMax", Refused(("Workers:BackoffMin", "00:00:10"), ("Workers:BackoffMax", "00:00:01")).Message);
        Assert.Contains("ActorQuery:Watchdog:Interval", Refused(("Watchdog:Interval", "soon")).Message);
        Assert.Contains("ActorQuery:Cluster:HeartbeatInterval", Refused(("Cluster:HeartbeatInterval", "00:00:00")).Message);
        Assert.Equal("ActorQuery:AlertWebhook 'hooks.example.com/alerts' is not an http(s) URL",
            Refused(("AlertWebhook", "hooks.example.com/alerts")).Message);
    }

    [Fact]
    public void The_alert_webhook_is_off_by_default_and_set_by_its_flag()
    {
        Assert.Equal("", new ServeOptions().AlertWebhook);
        var keys = ServeCli.Parse(["--alert-webhook", "http://127.0.0.1:9093/hook"]);
        Assert.Equal("http://127.0.0.1:9093/hook", keys["ActorQuery:AlertWebhook"]);
        var options = ServeOptions.From(new ConfigurationBuilder().AddInMemoryCollection(keys).Build());
        Assert.Equal("http://127.0.0.1:9093/hook", options.AlertWebhook);
    }

    [Fact]
    public void A_key_that_is_no_setting_is_refused_instead_of_ignored()
    {
        Assert.Equal("ActorQuery:MaxQeue is not a setting (actorquery help lists them)", Refused(("MaxQeue", "5")).Message);
        Assert.Equal("ActorQuery:Router:MaxInFlight is set by ActorQuery:MaxInFlight (--max-in-flight); use that instead",
            Refused(("Router:MaxInFlight", "3")).Message);
        Assert.Contains("ActorQuery:Workers:MaxBatch is set by ActorQuery:MaxBatch", Refused(("workers:maxbatch", "3")).Message);
        // Finer settings and list entries are settings.
        ServeOptions.From(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ActorQuery:Workers:CpuFallback"] = "true", ["ActorQuery:Faults:OomAtSteps:0"] = "3", ["ActorQuery:Cluster:Port"] = "0",
        }).Build());
    }

    [Fact]
    public void Every_default_passes_its_own_limits()
    {
        var options = ServeOptions.From(new ConfigurationBuilder().Build());
        Assert.Equal(16, options.MaxBatch);
        Assert.Equal(16, new ActorQuery.Actors.WorkerOptions().MaxBatch);
        Assert.Equal(16, new ActorQuery.Inference.Engine.EngineOptions { ModelPath = "m" }.MaxBatchSequences);
    }

    [Fact]
    public void Flags_env_vars_and_keys_are_unique()
    {
        Assert.Equal(ServeSettings.All.Count, ServeSettings.All.Select(s => s.Key).Distinct(StringComparer.OrdinalIgnoreCase).Count());
        var flags = ServeSettings.All.Where(s => s.Flag is not null).Select(s => s.Flag).ToList();
        Assert.Equal(flags.Count, flags.Distinct().Count());
    }

    [Fact]
    public void Every_flag_parses_its_default_and_every_shipped_appsettings_key_is_a_definition()
    {
        var args = ServeSettings.All.Where(s => s.Flag is not null && s.Kind is not (SettingKind.Flag or SettingKind.TextList) && s.Key != "Node" && s.Default.Length > 0)
            .SelectMany(s => new[] { $"--{s.Flag}", s.Default }).ToArray();
        var keys = ServeCli.Parse(args);
        Assert.Equal(new ServeOptions().Cluster, ServeOptions.From(new ConfigurationBuilder().AddInMemoryCollection(keys).Build()).Cluster);

        var shipped = new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json")).Build()
            .GetSection(ServeOptions.Section).AsEnumerable(makePathsRelative: true).Where(kv => kv.Value is not null).Select(kv => kv.Key);
        Assert.All(shipped, key => Assert.Contains(ServeSettings.All, s => s.Key.Equals(key, StringComparison.OrdinalIgnoreCase)));
    }

    /// <summary>The README's "## Configuration" tables are the definitions, row for row: regenerate them from
    /// <see cref="ServeSettings.Markdown"/> when a setting changes.</summary>
    [Fact]
    public void Readme_configuration_tables_are_the_definitions()
    {
        var readme = File.ReadAllText(Path.Combine(RepoFixtures.Root, "README.md")).ReplaceLineEndings("\n");
        var section = Regex.Match(readme, @"^## Configuration\n(.*?)(?=^## )", RegexOptions.Multiline | RegexOptions.Singleline);
        Assert.True(section.Success, "README.md has no '## Configuration' section");
        static List<string> Rows(string text) => text.Split('\n')
            .Where(l => l.StartsWith('|') && !l.StartsWith("| setting |", StringComparison.Ordinal) && !l.StartsWith("| ---", StringComparison.Ordinal))
            .ToList();
        var documented = Rows(section.Groups[1].Value);
        var defined = Rows(ServeSettings.Markdown());
        var missing = defined.Except(documented).ToList();
        var extra = documented.Except(defined).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0,
            $"README.md's configuration tables differ from ServeSettings:\n  missing or different: {string.Join("\n    ", missing)}\n  not a definition: {string.Join("\n    ", extra)}");
        Assert.Equal(defined, documented); // same order too
    }
}
