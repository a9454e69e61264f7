using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using System.Text.Json;
using ActorQuery.Actors;
using ActorQuery.Api.Tests.Fakes;

namespace ActorQuery.Api.Tests;

/// <summary>GET /memory and the memory metrics, over the fake's reading (<see cref="FakeQueryClient.DefaultMemory"/>: a 10 MB
/// limit, 500 KB runtime, 300 KB weights, 10 KB load overhead, 40 KB activations, a 100 KB KV pool of 1000 tokens, 120 in use).</summary>
public sealed class MemoryEndpointTests(SharedServer shared) : IClassFixture<SharedServer>
{
    [Fact]
    public async Task Memory_shows_the_plan_next_to_the_actuals_and_the_kv_tokens()
    {
        var r = await shared.Server.Http.GetAsync("/memory");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var body = await Json.ReadAsync(r);
        Assert.Equal("fake-node", body.GetProperty("node").GetString());

        var limit = body.GetProperty("limit");
        Assert.Equal(10_000_000, limit.GetProperty("bytes").GetInt64());
        Assert.Equal("physical memory", limit.GetProperty("source").GetString());
        Assert.Equal(0.9, limit.GetProperty("utilization").GetDouble());
        Assert.Equal(8_500_000, limit.GetProperty("budget_bytes").GetInt64());
        Assert.Equal(JsonValueKind.Null, limit.GetProperty("device").ValueKind); // a CPU node: the host's limit is the only one

        var plan = body.GetProperty("plan");
        Assert.Equal(500_000, plan.GetProperty("runtime_overhead_bytes").GetInt64());
        Assert.Equal(300_000, plan.GetProperty("weights_bytes").GetInt64());
        Assert.Equal(10_000, plan.GetProperty("load_overhead_bytes").GetInt64());
        Assert.Equal(40_000, plan.GetProperty("activation_peak_bytes").GetInt64());
        Assert.Equal(100_000, plan.GetProperty("kv_pool_bytes").GetInt64());
        Assert.Equal(0, plan.GetProperty("loading_share_bytes").GetInt64());
        Assert.Equal(950_000, plan.GetProperty("planned_bytes").GetInt64());

        var actual = body.GetProperty("actual");
        Assert.Equal(1_000_000, actual.GetProperty("resident_bytes").GetInt64());
        Assert.Equal(200_000, actual.GetProperty("managed_bytes").GetInt64());
        Assert.Equal(JsonValueKind.Null, actual.GetProperty("device_bytes").ValueKind);
        Assert.Equal(90_000, actual.GetProperty("unaccounted_bytes").GetInt64()); // resident less runtime, weights, load overhead, KV pool
        Assert.Equal(9_000_000, actual.GetProperty("headroom_bytes").GetInt64());

        var kv = body.GetProperty("kv");
        Assert.Equal(1000, kv.GetProperty("capacity_tokens").GetInt64());
        Assert.Equal(120, kv.GetProperty("used_tokens").GetInt64()); // 12 KB in use at 100 bytes a token
        Assert.Equal(880, kv.GetProperty("free_tokens").GetInt64());
        Assert.Equal(100_000, kv.GetProperty("capacity_bytes").GetInt64());
        Assert.Equal(12_000, kv.GetProperty("used_bytes").GetInt64());
        Assert.Equal(88_000, kv.GetProperty("free_bytes").GetInt64());
        Assert.Equal(100, kv.GetProperty("bytes_per_token").GetInt64());

        var watchdog = body.GetProperty("watchdog");
        Assert.Equal("normal", watchdog.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, watchdog.GetProperty("reason").ValueKind);
        Assert.Equal(0.8, watchdog.GetProperty("pause_mark").GetDouble());
        Assert.Equal(5_475_000, watchdog.GetProperty("cleanup_at_bytes").GetInt64());
        Assert.Equal(8_190_000, watchdog.GetProperty("pause_at_bytes").GetInt64());
        Assert.Equal(9_547_500, watchdog.GetProperty("shed_at_bytes").GetInt64());
        Assert.Equal(5000, watchdog.GetProperty("read_every_ms").GetInt64());
        Assert.Equal(3, watchdog.GetProperty("cleanups").GetInt64());
        Assert.Equal(1, watchdog.GetProperty("pauses").GetInt64());
        Assert.Equal(2, watchdog.GetProperty("sheds").GetInt64());
        Assert.Equal(DateTimeOffset.Parse("2026-11-27T10:05:00Z"), watchdog.GetProperty("at").GetDateTimeOffset());

        var worker = body.GetProperty("workers")[0];
        Assert.Equal("worker-0", worker.GetProperty("worker").GetString());
        Assert.Equal("cpu", worker.GetProperty("device").GetString());
        Assert.Equal(300_000, worker.GetProperty("weights_bytes").GetInt64());
        Assert.Equal(100_000, worker.GetProperty("kv_pool_bytes").GetInt64());
        Assert.Equal(12_000, worker.GetProperty("kv_used_bytes").GetInt64());
        Assert.Equal(16, worker.GetProperty("kv_block_size").GetInt32());
        Assert.False(worker.GetProperty("on_device").GetBoolean());
        Assert.Equal(1, worker.GetProperty("oom_count").GetInt32());
        Assert.Equal(5, body.GetProperty("cache").GetProperty("hits").GetInt64());

        Assert.Equal("resident 977 KiB of the physical memory 10 MiB: plan 928 KiB (runtime 488 KiB, weights 293 KiB, load overhead 10 KiB, "
                     + "activations 39 KiB, KV 98 KiB), headroom 9 MiB; KV 120 of 1000 tokens in use; watchdog normal",
            body.GetProperty("summary").GetString());
    }

    [Fact]
    public async Task Memory_under_pressure_names_the_state_and_the_reason()
    {
        const string reason = "memory 8.5 MiB is above 7.8 MiB";
        await using var server = await ApiServer.StartAsync(new FakeQueryClient
        {
            Paused = true, PauseReason = reason,
            Memory = FakeQueryClient.DefaultMemory with { ResidentBytes = 9_600_000, State = MemoryState.Shedding, Reason = reason },
        });
        var body = await Json.ReadAsync(await server.Http.GetAsync("/memory"));
        Assert.Equal("shedding", body.GetProperty("watchdog").GetProperty("state").GetString());
        Assert.Equal(reason, body.GetProperty("watchdog").GetProperty("reason").GetString());
        Assert.Equal(reason, body.GetProperty("workers")[0].GetProperty("memory_pressure").GetString());
        Assert.EndsWith($"; watchdog shedding: {reason}", body.GetProperty("summary").GetString());
    }

    [Fact]
    public async Task Memory_without_a_watchdog_reading_still_shows_the_workers_and_kv_tokens()
    {
        await using var server = await ApiServer.StartAsync(new FakeQueryClient { Memory = null });
        var r = await server.Http.GetAsync("/memory");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var body = await Json.ReadAsync(r);
        foreach (var part in new[] { "limit", "plan", "actual", "watchdog" })
            Assert.Equal(JsonValueKind.Null, body.GetProperty(part).ValueKind);
        Assert.Equal(1000, body.GetProperty("kv").GetProperty("capacity_tokens").GetInt64());
        Assert.Equal(120, body.GetProperty("kv").GetProperty("used_tokens").GetInt64());
        Assert.Equal(300_000, body.GetProperty("workers")[0].GetProperty("weights_bytes").GetInt64());
        Assert.Equal("no memory reading (the watchdog is off); KV 120 of 1000 tokens in use", body.GetProperty("summary").GetString());
    }

    [Fact]
    public async Task Metrics_expose_the_plan_the_actuals_the_kv_tokens_and_the_watchdogs_state()
    {
        var fake = new FakeQueryClient
        {
            Paused = true, PauseReason = "memory above the pause mark",
            Memory = FakeQueryClient.DefaultMemory with { State = MemoryState.Paused, Reason = "memory above the pause mark" },
        };
        await using var server = await ApiServer.StartAsync(fake);
        var m = await ScrapeAsync(server);
        var expected = new Dictionary<string, double>
        {
            ["resident"] = 1_000_000, ["managed"] = 200_000, ["unaccounted"] = 90_000, ["headroom"] = 9_000_000,
            ["limit"] = 10_000_000, ["budget"] = 8_500_000, ["planned"] = 950_000, ["runtime_overhead"] = 500_000,
            ["weights"] = 300_000, ["load_overhead"] = 10_000, ["activation_peak"] = 40_000, ["kv_pool"] = 100_000, ["kv_used"] = 12_000,
            ["cleanup_at"] = 5_475_000, ["pause_at"] = 8_190_000, ["shed_at"] = 9_547_500,
        };
        foreach (var (kind, value) in expected)
            Assert.Equal(value, m[$"actorquery_memory_bytes{{kind=\"{kind}\"}}"]);
        Assert.False(m.ContainsKey("actorquery_memory_bytes{kind=\"device\"}")); // the CPU has no device reading
        Assert.Equal(1000, m["actorquery_kv_cache_tokens{kind=\"capacity\"}"]);
        Assert.Equal(120, m["actorquery_kv_cache_tokens{kind=\"used\"}"]);
        Assert.Equal(880, m["actorquery_kv_cache_tokens{kind=\"free\"}"]);
        Assert.Equal(2, m["actorquery_memory_state"]);
        Assert.Equal(1, m["actorquery_memory_paused"]);
        Assert.Equal(3, m["actorquery_memory_cleanups_total"]);
        Assert.Equal(1, m["actorquery_memory_pauses_total"]);
        Assert.Equal(2, m["actorquery_memory_sheds_total"]);

        fake.Paused = false;
        fake.Memory = FakeQueryClient.DefaultMemory with { State = MemoryState.Normal, Cleanups = 4, DeviceBytes = 2_000_000 };
        m = await ScrapeAsync(server);
        Assert.Equal(0, m["actorquery_memory_state"]);
        Assert.Equal(0, m["actorquery_memory_paused"]);
        Assert.Equal(4, m["actorquery_memory_cleanups_total"]);
        Assert.Equal(2_000_000, m["actorquery_memory_bytes{kind=\"device\"}"]);
    }

    [Fact]
    public async Task On_a_gpu_memory_names_the_devices_own_limit_and_budget_beside_the_hosts()
    {
        var fake = new FakeQueryClient
        {
            Memory = FakeQueryClient.DefaultMemory with
            {
                DeviceBytes = 3_000_000_000, Device = new ActorQuery.Contracts.DeviceBudget("CUDA device 0 (cudaMemGetInfo)", 80_000_000_000, 71_000_000_000),
            },
        };
        await using var server = await ApiServer.StartAsync(fake);

        var limit = (await Json.ReadAsync(await server.Http.GetAsync("/memory"))).GetProperty("limit");
        Assert.Equal("physical memory", limit.GetProperty("source").GetString());
        var device = limit.GetProperty("device");
        Assert.Equal("CUDA device 0 (cudaMemGetInfo)", device.GetProperty("source").GetString());
        Assert.Equal((80_000_000_000, 71_000_000_000, 3_000_000_000),
            (device.GetProperty("bytes").GetInt64(), device.GetProperty("budget_bytes").GetInt64(), device.GetProperty("used_bytes").GetInt64()));
    }

    /// <summary>The samples of one scrape, by name and labels as Prometheus writes them.</summary>
    private static async Task<Dictionary<string, double>> ScrapeAsync(ApiServer server)
    {
        string text = await server.Http.GetStringAsync("/metrics");
        return Regex.Matches(text, @"^(actorquery_\S+) (\S+)$", RegexOptions.Multiline)
            .ToDictionary(x => x.Groups[1].Value, x => double.Parse(x.Groups[2].Value, CultureInfo.InvariantCulture));
    }
}
