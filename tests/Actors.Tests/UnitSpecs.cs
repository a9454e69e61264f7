using ActorQuery.Contracts;
using ActorQuery.Actors.Routing;
using ActorQuery.Actors.Workers;
using ActorQuery.Inference.Engine;
using Microsoft.Extensions.Configuration;

namespace ActorQuery.Actors.Tests;

/// <summary>
/// The plain rules behind the actors: backoff, degradation levels, LRU, options binding. The limits of the options are
/// checked once by the Host's settings table (tests/Host.Tests/ServeSettingsTests.cs), not by the records.
/// </summary>
public sealed class UnitSpecs
{
    [Fact]
    public void Restart_backoff_doubles_per_consecutive_failure_up_to_the_cap_with_bounded_jitter()
    {
        var options = new WorkerOptions { BackoffMin = TimeSpan.FromMilliseconds(100), BackoffMax = TimeSpan.FromSeconds(1), BackoffJitter = 0.2 };
        double jitter = 0;
        var policy = new RestartPolicy(options, canFallBackToCpu: false, () => jitter);
        Assert.Equal(TimeSpan.Zero, policy.NextDelay());

        var delays = new List<double>();
        for (int i = 0; i < 6; i++)
        {
            policy.RecordFailure(outOfMemory: false, DateTimeOffset.UnixEpoch);
            delays.Add(policy.NextDelay().TotalMilliseconds);
        }
        Assert.Equal(new[] { 100.0, 200, 400, 800, 1000, 1000 }, delays);
        jitter = 1;
        Assert.Equal(1200, policy.NextDelay().TotalMilliseconds);

        policy.ResetBackoff();
        Assert.Equal(TimeSpan.Zero, policy.NextDelay());
    }

    [Fact]
    public void Out_of_memory_failures_degrade_only_when_they_repeat_within_the_window()
    {
        var options = new WorkerOptions { DegradeAfterOoms = 3, OomWindow = TimeSpan.FromSeconds(60), MaxBatch = 8, MaxDegradeLevels = 2 };
        var policy = new RestartPolicy(options, canFallBackToCpu: false, () => 0);
        var t = DateTimeOffset.UnixEpoch;

        Assert.False(policy.RecordFailure(true, t));
        Assert.False(policy.RecordFailure(true, t.AddSeconds(30)));
        Assert.False(policy.RecordFailure(true, t.AddSeconds(100))); // the first two fell out of the window
        Assert.False(policy.RecordFailure(true, t.AddSeconds(110)));
        Assert.True(policy.RecordFailure(true, t.AddSeconds(120)));
        Assert.Equal(new EngineLoadSettings(0.5, 4, false, 1), policy.Settings);
        Assert.False(policy.RecordFailure(false, t.AddSeconds(111))); // crashes do not degrade

        for (int i = 0; i < 3; i++) policy.RecordFailure(true, t.AddSeconds(121 + i));
        Assert.Equal(new EngineLoadSettings(0.25, 2, false, 2), policy.Settings);
        for (int i = 0; i < 3; i++) Assert.False(policy.RecordFailure(true, t.AddSeconds(130 + i))); // no CPU fallback configured
        Assert.Equal(2, policy.DegradeLevel);
        Assert.Contains("degraded to level 2", policy.DegradedReason);
    }

    [Fact]
    public void Query_cache_evicts_the_least_recently_used_answer_by_entries_and_by_bytes()
    {
        var cache = new QueryCache(new CacheOptions { MaxEntries = 2, MaxBytes = 10_000 });
        CachedAnswer Answer(string text) => new(text, new[] { 1, 2 }, null, FinishReason.Length, 3, 2, "w");
        cache.Put("a", Answer("A"));
        cache.Put("b", Answer("B"));
        Assert.True(cache.TryGet("a", out _)); // a is now the most recent
        cache.Put("c", Answer("C"));

        Assert.False(cache.TryGet("b", out _));
        Assert.True(cache.TryGet("c", out var c));
        Assert.Equal("C", c.Text);
        Assert.Equal(new CacheStats(2, cache.Stats.Bytes, 2, 1), cache.Stats);

        var small = new QueryCache(new CacheOptions { MaxEntries = 100, MaxBytes = 1_000 });
        small.Put("x", Answer(new string('x', 200)));
        small.Put("y", Answer(new string('y', 200)));
        Assert.Equal(1, small.Stats.Entries); // two of ~550 bytes do not fit in 1,000
        Assert.True(small.TryGet("y", out _));
        Assert.True(small.Stats.Bytes <= 1_000);
    }

    [Fact]
    public void Only_deterministic_queries_have_a_cache_key_and_every_parameter_is_part_of_it()
    {
        var greedy = new QueryRequest { QueryId = "1", PromptTokenIds = new[] { 1, 2 }, Sampling = SamplingParams.Greedy(5) };
        Assert.Equal(QueryCache.KeyOf(greedy), QueryCache.KeyOf(greedy with { QueryId = "2", PromptTokenIds = new[] { 1, 2 } }));
        Assert.NotEqual(QueryCache.KeyOf(greedy), QueryCache.KeyOf(greedy with { Sampling = SamplingParams.Greedy(6) }));
        Assert.NotEqual(QueryCache.KeyOf(greedy), QueryCache.KeyOf(greedy with { StopStrings = new[] { "x" } }));
        Assert.NotNull(QueryCache.KeyOf(greedy with { Sampling = new SamplingParams { Temperature = 0.8f, Seed = 7 } }));
        Assert.Null(QueryCache.KeyOf(greedy with { Sampling = new SamplingParams { Temperature = 0.8f } }));
    }

    [Fact]
    public void Node_options_bind_from_the_ActorQuery_section_and_environment_variables()
    {
        Environment.SetEnvironmentVariable("ACTORQUERY__FAULTS__OOMEVERYNTHSTEP", "40");
        try
        {
            var config = new ConfigurationBuilder()
                .AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["ActorQuery:Router:MaxInFlight"] = "3",
                    ["ActorQuery:Workers:CpuFallback"] = "true",
                    ["ActorQuery:Watchdog:Interval"] = "00:00:02",
                    ["ActorQuery:Faults:OomAtSteps:0"] = "5",
                })
                .AddEnvironmentVariables()
                .Build();

            var options = config.GetSection("ActorQuery").Get<ActorQueryNodeOptions>()!;

            Assert.Equal(40, options.Faults.OomEveryNthStep);
            Assert.Equal(new[] { 5 }, options.Faults.OomAtSteps);
            Assert.True(options.Faults.Enabled);
            Assert.Equal((3, 64), (options.Router.MaxInFlight, options.Router.MaxQueue)); // unset fields keep their defaults
            Assert.True(options.Workers.CpuFallback);
            Assert.Equal(TimeSpan.FromSeconds(2), options.Watchdog.Interval);
            Assert.Equal((0.5, 0.8, 0.95), (options.Watchdog.CleanupMark, options.Watchdog.PauseMark, options.Watchdog.ShedMark));
        }
        finally
        {
            Environment.SetEnvironmentVariable("ACTORQUERY__FAULTS__OOMEVERYNTHSTEP", null);
        }
    }
}
