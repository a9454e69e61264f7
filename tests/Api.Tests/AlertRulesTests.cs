using ActorQuery.Actors;
using ActorQuery.Actors.Cluster;
using ActorQuery.Api.Dashboard;

namespace ActorQuery.Api.Tests;

/// <summary>The alert rules over successive statuses: each condition fires once while it holds and resolves once when it clears.</summary>
public sealed class AlertRulesTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-12-07T10:00:00Z");

    private static WorkerStatus Worker(WorkerState state = WorkerState.Ready, int restarts = 0, int ooms = 0, bool degraded = false) => new()
    {
        Worker = "worker-1", Node = "node-a", State = state, Restarts = restarts, OomCount = ooms, Degraded = degraded,
        DegradedReason = degraded ? "3 out-of-memory errors in 5 min" : null, Error = state == WorkerState.Failed ? "could not load" : null,
    };

    private static RouterStatus Status(long resident = 1_000_000, bool paused = false, params WorkerStatus[] workers) =>
        new("node-a", paused, false, 0, 0, 8, 64, workers.Length == 0 ? [Worker()] : workers, new CacheStats(0, 0, 0, 0),
            FakeQueryClient.DefaultMemory with { ResidentBytes = resident }, PauseReason: paused ? "memory 8.3 MB is above 8.19 MB" : null);

    [Fact]
    public void Memory_above_the_cleanup_mark_fires_once_while_it_holds_and_resolves_once_when_it_clears()
    {
        var rules = new AlertRules(TimeSpan.FromMinutes(1));
        Assert.Empty(rules.Evaluate(Status(), null, T0).Changes);

        var fired = rules.Evaluate(Status(resident: 6_000_000), null, T0.AddSeconds(1)).Changes;
        var alert = Assert.Single(fired);
        Assert.Equal(("memory_above_cleanup", "firing", "warning", "node-a"), (alert.Kind, alert.Status, alert.Severity, alert.Node));
        Assert.Equal(6_000_000L, alert.Values["resident_bytes"]);
        Assert.Equal(5_475_000L, alert.Values["cleanup_at_bytes"]);

        for (int s = 2; s < 10; s++) Assert.Empty(rules.Evaluate(Status(resident: 6_100_000), null, T0.AddSeconds(s)).Changes);

        var resolved = Assert.Single(rules.Evaluate(Status(resident: 2_000_000), null, T0.AddSeconds(10)).Changes);
        Assert.Equal(("memory_above_cleanup", "resolved"), (resolved.Kind, resolved.Status));
        Assert.Equal(2_000_000L, resolved.Values["resident_bytes"]);
        Assert.Equal(T0.AddSeconds(1), resolved.Values["fired_at"]);
        Assert.Contains("back under the cleanup mark", resolved.Message);
        Assert.Contains("after 9 s", resolved.Message);
        Assert.Empty(rules.Evaluate(Status(resident: 2_000_000), null, T0.AddSeconds(11)).Changes);
        Assert.Empty(rules.Firing);
    }

    [Fact]
    public void Above_the_pause_mark_with_admission_paused_fires_both_and_the_cleanup_alert_and_they_resolve_separately()
    {
        var rules = new AlertRules(TimeSpan.FromMinutes(1));
        var fired = rules.Evaluate(Status(resident: 8_300_000, paused: true), null, T0).Changes;
        Assert.Equal(["admission_paused", "memory_above_cleanup", "memory_above_pause"], fired.Select(a => a.Kind).Order().ToArray());
        Assert.All(fired, a => Assert.Equal("firing", a.Status));
        Assert.Contains("8.3 MB is above 8.19 MB", fired.Single(a => a.Kind == "admission_paused").Message);

        // Under the pause mark, still paused (hysteresis until under the cleanup mark): only the pause-mark alert clears.
        var changes = rules.Evaluate(Status(resident: 6_000_000, paused: true), null, T0.AddSeconds(1)).Changes;
        Assert.Equal(("memory_above_pause", "resolved"), (Assert.Single(changes).Kind, changes[0].Status));

        changes = rules.Evaluate(Status(resident: 1_000_000, paused: false), null, T0.AddSeconds(2)).Changes;
        Assert.Equal(["admission_paused", "memory_above_cleanup"], changes.Select(a => a.Kind).Order().ToArray());
        Assert.All(changes, a => Assert.Equal("resolved", a.Status));
        var resumed = changes.Single(a => a.Kind == "admission_paused");
        Assert.StartsWith("admission resumed after 2 s", resumed.Message);
        Assert.Equal(1_000_000L, resumed.Values["resident_bytes"]); // now, not when it fired
    }

    [Fact]
    public void An_out_of_memory_fires_once_goes_on_the_timeline_each_time_and_resolves_after_the_hold_without_another()
    {
        var rules = new AlertRules(TimeSpan.FromSeconds(60));
        Assert.Empty(rules.Evaluate(Status(), null, T0).Changes);

        var first = rules.Evaluate(Status(workers: Worker(WorkerState.Restarting, restarts: 1, ooms: 1)), null, T0.AddSeconds(1));
        var alert = Assert.Single(first.Changes);
        Assert.Equal(("oom_recovered", "firing", "worker-1"), (alert.Kind, alert.Status, alert.Worker));
        Assert.Contains(first.Occurrences, o => o.Kind == "oom" && o.Worker == "worker-1");
        Assert.Contains(first.Occurrences, o => o.Kind == "worker_state" && o.Message.Contains("ready → restarting"));

        // A second out-of-memory 30 s later: on the timeline, but the alert is already firing.
        var second = rules.Evaluate(Status(workers: Worker(WorkerState.Ready, restarts: 2, ooms: 2)), null, T0.AddSeconds(31));
        Assert.Empty(second.Changes);
        Assert.Contains(second.Occurrences, o => o.Kind == "oom" && o.Message.Contains("2 in all"));

        // 60 s after the last one, quiet: resolved, once.
        Assert.Empty(rules.Evaluate(Status(workers: Worker(WorkerState.Ready, restarts: 2, ooms: 2)), null, T0.AddSeconds(90)).Changes);
        var resolved = Assert.Single(rules.Evaluate(Status(workers: Worker(WorkerState.Ready, restarts: 2, ooms: 2)), null, T0.AddSeconds(92)).Changes);
        Assert.Equal(("oom_recovered", "resolved"), (resolved.Kind, resolved.Status));
        Assert.Empty(rules.Evaluate(Status(workers: Worker(WorkerState.Ready, restarts: 2, ooms: 2)), null, T0.AddSeconds(93)).Changes);
    }

    [Fact]
    public void A_restart_for_another_reason_a_degraded_and_a_failed_worker_each_alert_per_worker()
    {
        var rules = new AlertRules(TimeSpan.FromSeconds(60));
        rules.Evaluate(Status(), null, T0);
        var crashed = Assert.Single(rules.Evaluate(Status(workers: Worker(restarts: 1)), null, T0.AddSeconds(1)).Changes);
        Assert.Equal("worker_restarted", crashed.Kind);

        var degraded = rules.Evaluate(Status(workers: Worker(restarts: 1, degraded: true)), null, T0.AddSeconds(2)).Changes;
        Assert.Equal(("worker_degraded", "warning"), (Assert.Single(degraded).Kind, degraded[0].Severity));
        Assert.Contains("3 out-of-memory errors", degraded[0].Message);

        var failed = rules.Evaluate(Status(workers: Worker(WorkerState.Failed, restarts: 1, degraded: true)), null, T0.AddSeconds(3));
        Assert.Equal(("worker_failed", "critical"), (Assert.Single(failed.Changes).Kind, failed.Changes[0].Severity));
        Assert.Contains("could not load", failed.Changes[0].Message);
        Assert.Contains(failed.Occurrences, o => o.Kind == "worker_state" && o.Severity == "critical");
    }

    [Fact]
    public void An_unreachable_member_fires_a_node_alert_until_it_is_reachable_again()
    {
        var rules = new AlertRules(TimeSpan.FromSeconds(60));
        ClusterView View(bool reachable) => new("akka.tcp://aq@10.0.0.1:4053", ["gateway"], "akka.tcp://aq@10.0.0.1:4053",
            [new ClusterMemberView("akka.tcp://aq@10.0.0.1:4053", ["gateway"], "Up", true, true, true),
             new ClusterMemberView("akka.tcp://aq@10.0.0.2:4053", ["worker"], "Up", reachable, false, false)], []);
        Assert.Empty(rules.Evaluate(Status(), View(true), T0).Changes);
        var lost = Assert.Single(rules.Evaluate(Status(), View(false), T0.AddSeconds(1)).Changes);
        Assert.Equal(("node_unreachable", "critical", "akka.tcp://aq@10.0.0.2:4053"), (lost.Kind, lost.Severity, lost.Node));
        Assert.Empty(rules.Evaluate(Status(), View(false), T0.AddSeconds(2)).Changes);
        Assert.Equal("resolved", Assert.Single(rules.Evaluate(Status(), View(true), T0.AddSeconds(3)).Changes).Status);
    }
}
