using ActorQuery.Contracts;
using ActorQuery.Host.Cli;
using ActorQuery.Host.Serve;
using Microsoft.Extensions.Configuration;

namespace ActorQuery.Host.Tests;

/// <summary>A model pool's command line and catalogue: --model NAME=DIR, per-model values as NAME=VALUE, and the reservation
/// each model gets from them.</summary>
[Collection(ServeCollection.Name)]
public sealed class ModelPoolSettingsTests
{
    private static string Folder => DefaultModelServer.ModelFolder;

    private static ServeOptions OptionsOf(params string[] args)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(ServeCli.Parse(args)).Build();
        ServeSettings.Validate(config);
        return ServeOptions.From(config);
    }

    [Fact]
    public void Model_flags_with_names_make_a_pool_and_name_value_flags_set_one_models_own_values()
    {
        var keys = ServeCli.Parse(["--model", $"small={Folder}", "--model", $"big={Folder}", "--dtype", "float32", "--dtype", "small=bfloat16",
            "--workers", "big=0", "--kv-cache-size", "small=64MiB"]);
        Assert.Equal($"small={Folder}", keys["ActorQuery:Models:cli0"]);
        Assert.Equal("float32", keys["ActorQuery:Dtype"]);
        Assert.Equal("small:dtype=bfloat16", keys["ActorQuery:ModelOptions:cli0"]);
        Assert.False(keys.ContainsKey("ActorQuery:ModelFolder"));

        var one = ServeCli.Parse(["--model", Folder, "--workers", "2"]);
        Assert.Equal(Folder, one["ActorQuery:ModelFolder"]);
        Assert.Equal("2", one["ActorQuery:WorkersPerNode"]);
    }

    [Fact]
    public void Each_model_reserves_by_its_own_dtype_kv_pool_and_workers_and_one_with_no_workers_is_only_routed()
    {
        var o = OptionsOf("--model", $"small={Folder}", "--model", $"big={Folder}", "--model", $"elsewhere={Folder}", "--dtype", "float32",
            "--dtype", "small=bfloat16", "--kv-cache-size", "small=64MiB", "--workers", "big=2", "--workers", "elsewhere=0", "--pin", "big");
        var pool = ModelPoolCatalogue.Build(o).ToDictionary(m => m.Served.Name);

        Assert.Equal(("bfloat16", 64L << 20, 1), (pool["small"].Dtype, pool["small"].KvBytes, pool["small"].Workers));
        Assert.Equal(("float32", 2, true), (pool["big"].Dtype, pool["big"].Workers, pool["big"].Entry.Pinned));
        Assert.Contains("bfloat16", pool["small"].Entry.ReservationTerms);
        Assert.Contains("2 workers x (", pool["big"].Entry.ReservationTerms);
        Assert.True(pool["big"].Entry.ReservationBytes > pool["small"].Entry.ReservationBytes);
        Assert.False(pool["elsewhere"].Loads);
        Assert.True(pool["small"].Loads);
        Assert.Equal("small", ModelPoolCatalogue.Build(o)[0].Served.Name); // the first is the default
    }

    [Theory]
    [InlineData("--dtype", "small=float16", "ActorQuery:ModelOptions 'small:dtype=float16': 'float16' is not one of auto, float32, bfloat16")]
    [InlineData("--workers", "small=x", "'x' is not an integer")]
    [InlineData("--keep-alive", "small=soon", "ActorQuery:KeepAlive 'small=soon'")]
    public void A_bad_per_model_value_is_refused_naming_it(string flag, string value, string expected)
    {
        var e = Assert.ThrowsAny<Exception>(() => OptionsOf("--model", $"small={Folder}", flag, value));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_per_model_value_for_a_model_not_in_the_pool_is_refused()
    {
        var o = OptionsOf("--model", $"small={Folder}", "--dtype", "tiny=bfloat16");
        var e = Assert.Throws<OptionsException>(() => ModelPoolCatalogue.Build(o));
        Assert.Contains("ActorQuery:ModelOptions 'tiny' is not a model of the pool (small)", e.Message);
    }
}
