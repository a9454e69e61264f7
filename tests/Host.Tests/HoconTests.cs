using ActorQuery.Host.Serve;

namespace ActorQuery.Host.Tests;

public sealed class HoconTests
{
    [Fact]
    public void Hocon_files_load_in_file_name_order_and_a_later_file_wins()
    {
        string folder = Directory.CreateTempSubdirectory("aq-hocon-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "b.hocon"), "x.value = b\nx.only-b = 2");
            File.WriteAllText(Path.Combine(folder, "a.hocon"), "x.value = a\nx.only-a = 1");
            var files = HoconFiles.Load(folder);
            Assert.Equal(["a.hocon", "b.hocon"], files.Select(f => f.File));
            var merged = HoconFiles.Merge(files);
            Assert.Equal("b", merged.GetString("x.value"));
            Assert.Equal(1, merged.GetInt("x.only-a"));
            Assert.Equal(2, merged.GetInt("x.only-b"));
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Fact]
    public void A_broken_hocon_file_is_named_in_the_error()
    {
        string folder = Directory.CreateTempSubdirectory("aq-hocon-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "bad.hocon"), "akka.loglevel = ${no.such.setting}");
            var e = Assert.Throws<OptionsException>(() => HoconFiles.Load(folder));
            Assert.Contains("bad.hocon", e.Message);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Fact]
    public void Shipped_host_hocon_routes_akka_logging_through_serilog_and_leaves_sigterm_to_the_host()
    {
        var config = HoconFiles.Merge(HoconFiles.Load(HoconFiles.DefaultFolder));
        Assert.Contains("Akka.Logger.Serilog.SerilogLogger, Akka.Logger.Serilog", config.GetStringList("akka.loggers"));
        Assert.Equal("Akka.Logger.Serilog.SerilogLogMessageFormatter, Akka.Logger.Serilog", config.GetString("akka.logger-formatter"));
        Assert.False(config.GetBoolean("akka.coordinated-shutdown.run-by-clr-shutdown-hook"));
        Assert.False(config.GetBoolean("akka.coordinated-shutdown.exit-clr"));
    }
}

public sealed class ServedModelsTests
{
    [Fact]
    public void Served_model_takes_its_name_from_the_folder_and_its_context_from_config_json()
    {
        var model = ServedModels.FromFolder(Path.Combine(AppContext.BaseDirectory, "fixtures", "qwen2-tiny-f32"), new ActorQuery.TestSupport.ByteTokenizer());
        Assert.Equal("qwen2-tiny-f32", model.Name);
        Assert.Equal(4096, model.ContextLength);
    }
}
