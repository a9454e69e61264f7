using ActorQuery.Contracts;
using ActorQuery.Host.Cli;
using ActorQuery.Host.Serve;
using Microsoft.Extensions.Configuration;

namespace ActorQuery.Host.Tests;

[Collection(ServeCollection.Name)]
public sealed class ServeOptionsTests
{
    [Fact]
    public void Command_line_options_become_configuration_keys()
    {
        var keys = ServeCli.Parse(["--model", "/m/qwen", "--max-queue", "12", "--pause-mark", "0.8", "--memory-limit", "8GiB",
            "--urls", "http://0.0.0.0:9000", "--drain-timeout", "5", "--log-level", "Debug"]);
        Assert.Equal("/m/qwen", keys["ActorQuery:ModelFolder"]);
        Assert.Equal("12", keys["ActorQuery:MaxQueue"]);
        Assert.Equal("0.8", keys["ActorQuery:PauseMark"]);
        Assert.Equal("8GiB", keys["ActorQuery:MemoryLimit"]);
        Assert.Equal("http://0.0.0.0:9000", keys["ActorQuery:Urls"]);
        Assert.Equal("5", keys["ActorQuery:DrainTimeoutSeconds"]);
        Assert.Equal("Debug", keys["ActorQuery:LogLevel"]);
    }

    [Fact]
    public void A_finer_size_setting_written_with_its_unit_binds_to_its_bytes()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ActorQuery:Faults:LeakBytesPerStep"] = "12MiB",
        }).Build();

        var options = ServeOptions.From(config);
        Assert.Equal(12L << 20, ActorBackend.NodeOptions(config, options).Faults.LeakBytesPerStep);
    }

    [Fact]
    public void Cluster_flags_become_keys_of_the_cluster_section()
    {
        var keys = ServeCli.Parse(["--roles", "worker", "--cluster-host", "0.0.0.0", "--cluster-port", "9101",
            "--cluster-public-host", "10.0.0.7", "--seed-nodes", "akka.tcp://actorquery@10.0.0.5:9100", "--cluster-name", "actorquery",
            "--node-name", "node-1"]);
        var options = ServeOptions.From(new ConfigurationBuilder().AddInMemoryCollection(keys).Build());
        Assert.Equal(["worker"], options.Cluster.RoleList);
        Assert.Equal(("0.0.0.0", 9101, "10.0.0.7"), (options.Cluster.Hostname, options.Cluster.Port, options.Cluster.PublicHostname));
        Assert.Equal(["akka.tcp://actorquery@10.0.0.5:9100"], options.Cluster.SeedNodeList);
        Assert.Equal("node-1", keys["ActorQuery:Node"]);
    }

    [Fact]
    public void By_default_a_node_is_gateway_and_worker_on_loopback_with_a_free_remoting_port_and_no_seeds()
    {
        var c = new ServeOptions().Cluster;
        Assert.Equal(["gateway", "worker"], c.RoleList);
        Assert.Equal(("127.0.0.1", 0, "actorquery"), (c.Hostname, c.Port, c.SystemName));
        Assert.Empty(c.SeedNodeList);
    }

    [Theory]
    [InlineData("Roles", "gateway,boss", "ActorQuery:Cluster:Roles")]
    [InlineData("Port", "70000", "ActorQuery:Cluster:Port")]
    [InlineData("SeedNodes", "10.0.0.5:9100", "ActorQuery:Cluster:SeedNodes")]
    [InlineData("SeedNodes", "akka.tcp://other@10.0.0.5:9100", "names system 'other'")]
    [InlineData("SystemName", "my system", "ActorQuery:Cluster:SystemName")]
    public void Bad_cluster_settings_name_the_setting_and_the_reason(string key, string value, string expected)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [$"ActorQuery:Cluster:{key}"] = value }).Build();
        var e = Assert.Throws<OptionsException>(() => ServeOptions.From(config));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("--max-queue", "many", "--max-queue")]
    [InlineData("--cache-size", "lots", "--cache-size")]
    [InlineData("--no-such-option", "1", "--no-such-option")]
    [InlineData("--prefix-caching", "off", "--prefix-caching")]
    public void Bad_command_line_is_one_line_naming_the_option(string option, string value, string named)
    {
        var e = Assert.Throws<CliException>(() => ServeCli.Parse([option, value]));
        Assert.Contains(named, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData(new string[0], true)]
    [InlineData(new[] { "--prefix-caching", "false" }, false)]
    [InlineData(new[] { "--prefix-caching", "true" }, true)]
    [InlineData(new[] { "--prefix-caching=False" }, false)]
    public void Prefix_caching_is_on_unless_the_command_line_turns_it_off(string[] args, bool on)
    {
        var options = ServeOptions.From(new ConfigurationBuilder().AddInMemoryCollection(ServeCli.Parse(args)).Build());
        Assert.Equal(on, options.PrefixCaching);
    }

    [Fact]
    public void Shipped_appsettings_match_the_documented_defaults()
    {
        var config = new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json")).Build();
        var fromFile = ServeOptions.From(config);
        var defaults = new ServeOptions();
        foreach (var p in typeof(ServeOptions).GetProperties().Where(p => p.CanWrite))
            Assert.Equal(p.GetValue(defaults), p.GetValue(fromFile));
        Assert.Equal("models/default", defaults.ModelFolder);
        Assert.Equal("http://localhost:8000", defaults.Urls);
        Assert.Equal(TimeSpan.FromSeconds(30), defaults.DrainTimeout);
        Assert.Equal(1L << 20, defaults.MaxBodyBytesValue);
        Assert.Null(defaults.MemoryLimitBytes);
    }

    /// <summary>Sets process environment variables, so it shares the non-parallel collection with the serve tests.</summary>
    [Fact]
    public void Environment_variables_override_appsettings_and_the_command_line_overrides_both()
    {
        Environment.SetEnvironmentVariable("ACTORQUERY__MAXQUEUE", "7");
        Environment.SetEnvironmentVariable("ACTORQUERY__MAXINFLIGHT", "3");
        try
        {
            // The layers in the order WebApplication.CreateBuilder + ServeApp stack them.
            var config = new ConfigurationBuilder()
                .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"))
                .AddEnvironmentVariables()
                .AddInMemoryCollection(ServeCli.Parse(["--max-in-flight", "5"]))
                .Build();
            var options = ServeOptions.From(config);
            Assert.Equal(7, options.MaxQueue);
            Assert.Equal(5, options.MaxInFlight);
        }
        finally
        {
            Environment.SetEnvironmentVariable("ACTORQUERY__MAXQUEUE", null);
            Environment.SetEnvironmentVariable("ACTORQUERY__MAXINFLIGHT", null);
        }
    }

    [Fact]
    public void Max_in_flight_auto_is_the_nodes_batch_capacity_and_at_least_the_routers_default()
    {
        static ServeOptions With(params (string Key, string Value)[] settings) =>
            ServeOptions.From(new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s =>
                new KeyValuePair<string, string?>($"ActorQuery:{s.Key}", s.Value))).Build());
        Assert.Equal(16, With().EffectiveMaxInFlight); // one worker process, one worker, a batch of 16
        Assert.Equal(2 * 3 * 4, With(("WorkerProcesses", "2"), ("WorkersPerNode", "3"), ("MaxBatch", "4")).EffectiveMaxInFlight);
        Assert.Equal(8, With(("MaxBatch", "2")).EffectiveMaxInFlight);
        Assert.Equal(8, With(("Cluster:Roles", "gateway")).EffectiveMaxInFlight);
        Assert.Equal(5, With(("MaxInFlight", "5")).EffectiveMaxInFlight);
    }

    [Theory]
    [InlineData("PauseMark", "0.3", "CleanupMark")]
    [InlineData("Dtype", "int4", "Dtype")]
    [InlineData("Device", "tpu", "Device")]
    [InlineData("Quantize", "int4", "Quantize")]
    [InlineData("MaxInFlight", "-1", "MaxInFlight")]
    [InlineData("MaxQueue", "lots", "MaxQueue")]
    [InlineData("MemoryLimit", "huge", "MemoryLimit")]
    [InlineData("Urls", "localhost:8000", "Urls")]
    [InlineData("LogLevel", "Chatty", "LogLevel")]
    [InlineData("MaxBodyBytes", "1GiB", "MaxBodyBytes")]
    public void Bad_options_are_refused_naming_the_option(string key, string value, string named)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [$"ActorQuery:{key}"] = value }).Build();
        var e = Assert.Throws<OptionsException>(() => ServeOptions.From(config));
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void Quantize_int8_makes_the_dtype_int8_and_refuses_another_explicit_dtype()
    {
        static ServeOptions With(params string[] args) =>
            ServeOptions.From(new ConfigurationBuilder().AddInMemoryCollection(ServeCli.Parse(args)).Build());
        Assert.Equal("int8", With("--quantize", "int8").Dtype);
        Assert.Equal("int8", With("--quantize", "int8", "--dtype", "int8").Dtype);
        Assert.Equal("int8", With("--dtype", "int8").Dtype);
        Assert.Equal("auto", With("--quantize", "none").Dtype);
        var e = Assert.Throws<OptionsException>(() => With("--quantize", "int8", "--dtype", "bfloat16"));
        Assert.Contains("Quantize int8 and ActorQuery:Dtype bfloat16", e.Message);
    }

    [Theory]
    [InlineData("1048576", 1048576L)]
    [InlineData("1MiB", 1048576L)]
    [InlineData("8GiB", 8589934592L)]
    [InlineData("2GB", 2000000000L)]
    [InlineData("1.5 KiB", 1536L)]
    public void Sizes_accept_binary_and_decimal_suffixes(string text, long bytes) => Assert.Equal(bytes, ByteSize.Parse(text));
}
