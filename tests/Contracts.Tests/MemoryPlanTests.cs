namespace ActorQuery.Contracts.Tests;

/// <summary>The plan's arithmetic: the budget from the limit, and what the KV pool gets of it.</summary>
public sealed class MemoryPlanTests
{
    private const long GiB = 1L << 30, MiB = 1L << 20;

    [Fact]
    public void The_budget_is_the_limit_times_utilization_less_what_the_process_holds()
    {
        var budget = new MemoryBudget(16 * GiB, "cgroup limit", 0.9, HeldBytes: 400 * MiB, AvailableBytes: 16 * GiB, Workers: 1);

        Assert.Equal((long)(16 * GiB * 0.9) - 400 * MiB, budget.BudgetBytes);
        Assert.Equal("cgroup limit 16.0 GiB x 0.9, less 400 MiB held", budget.Describe());
    }

    [Fact]
    public void The_budget_is_capped_by_what_is_free_now_and_says_so()
    {
        // 24 GiB machine with only 8 GiB free (other processes): the plan may not count on memory others hold.
        var budget = new MemoryBudget(24 * GiB, "physical memory", 0.9, HeldBytes: 300 * MiB, AvailableBytes: 8 * GiB, Workers: 1);

        Assert.Equal(8 * GiB - (long)(24 * GiB * 0.1), budget.BudgetBytes);
        Assert.EndsWith("capped by 8.0 GiB free now", budget.Describe());
    }

    [Fact]
    public void Workers_on_one_node_share_the_budget()
    {
        var budget = new MemoryBudget(10 * GiB, "--memory-limit", 1.0, HeldBytes: 1 * GiB, AvailableBytes: 20 * GiB, Workers: 3);

        Assert.Equal(3 * GiB, budget.PerWorkerBytes);
        Assert.EndsWith("shared by 3 workers", budget.Describe());
        Assert.Equal(0, (budget with { Workers = 0 }).PerWorkerBytes);
    }

    [Fact]
    public void Auto_gives_the_kv_pool_what_weights_overhead_and_activations_leave()
    {
        long kv = MemoryPlanner.KvBytes(4 * GiB, "terms", weightBytes: 1 * GiB, overheadBytes: 100 * MiB, activationBytes: 300 * MiB,
            minimumKvBytes: 24 * MiB, explicitKvBytes: null);

        Assert.Equal(4 * GiB - 1 * GiB - 400 * MiB, kv);
    }

    [Fact]
    public void Auto_stops_at_what_max_batch_sequences_of_the_whole_context_can_use()
    {
        // 2 KiB a token, context 500 (32 blocks of 16: 512 tokens), 16 sequences: 16 MiB, however large the budget.
        long most = MemoryPlanner.MaximumKvBytes(2048, contextLength: 500, maxBatch: 16, blockSize: 16);
        Assert.Equal(16 * 512 * 2048L, most);

        long kv = MemoryPlanner.KvBytes(20 * GiB, "terms", 5 * MiB, 0, 1 * MiB, MemoryPlanner.MinimumKvBytes(2048, 500), null, most);
        Assert.Equal(most, kv);
    }

    [Fact]
    public void A_plan_without_room_for_the_minimum_kv_is_refused_naming_every_term()
    {
        var e = Assert.Throws<MemoryPlanException>(() => MemoryPlanner.KvBytes(
            (long)(14.8 * GiB), "cgroup limit 16.0 GiB x 0.9, less 400 MiB held", weightBytes: (long)(15.2 * GiB), overheadBytes: 0,
            activationBytes: (long)(0.4 * GiB), minimumKvBytes: 100 * MiB, explicitKvBytes: null));

        Assert.Equal("weights 15.2 GiB + activations 410 MiB + minimum KV 100 MiB > budget 14.8 GiB (cgroup limit 16.0 GiB x 0.9, "
                     + "less 400 MiB held); try --dtype bfloat16, a smaller model or a larger limit", e.Message);
    }

    [Fact]
    public void Bfloat16_is_suggested_only_when_the_weights_are_not_two_byte_already()
    {
        var e = Assert.Throws<MemoryPlanException>(() => MemoryPlanner.KvBytes(
            1 * GiB, "t", 942 * MiB, 110 * MiB, 84 * MiB, 24 * MiB, explicitKvBytes: null, smallerFormat: null));

        Assert.EndsWith("; try a smaller model or a larger limit", e.Message);
        Assert.DoesNotContain("bfloat16", e.Message);
    }

    [Fact]
    public void An_explicit_kv_size_is_kept_when_it_fits_and_refused_with_what_fits_when_it_does_not()
    {
        Assert.Equal(1 * GiB, MemoryPlanner.KvBytes(4 * GiB, "t", 1 * GiB, 0, 0, 1 * MiB, explicitKvBytes: 1 * GiB, maximumKvBytes: 10 * MiB));

        var e = Assert.Throws<MemoryPlanException>(() => MemoryPlanner.KvBytes(
            (long)(1.5 * GiB), "cgroup limit 1.76 GiB x 0.9, less 120 MiB held", 943 * MiB, 0, 0, 24 * MiB, explicitKvBytes: 6 * GiB));
        Assert.Contains("KV cache (--kv-cache-size) 6.0 GiB > budget 1.5 GiB (cgroup limit 1.76 GiB x 0.9, less 120 MiB held)", e.Message);
        Assert.EndsWith($"at most {MemorySize.Format((long)(1.5 * GiB) - 943 * MiB)} fits: use --kv-cache-size auto or a smaller size", e.Message);
    }

    [Theory]
    [InlineData(512L, "512 B")]
    [InlineData(800L * 1024, "800 KiB")]
    [InlineData(412L * 1024 * 1024, "412 MiB")]
    [InlineData(16L << 30, "16.0 GiB")]
    [InlineData(-(3L << 30) / 2, "-1.5 GiB")]
    public void Sizes_read_as_people_write_them(long bytes, string text) => Assert.Equal(text, MemorySize.Format(bytes));
}
