using Akka.Configuration;
using ActorQuery.Actors.Hosting;

namespace ActorQuery.Host.Serve;

/// <summary>The hocon/ folder next to the executable, read by <see cref="HoconFolder"/>; a bad folder or file is an <see cref="OptionsException"/>.</summary>
public static class HoconFiles
{
    public static string DefaultFolder => Path.Combine(AppContext.BaseDirectory, "hocon");

    public static IReadOnlyList<(string File, Config Config)> Load(string folder)
    {
        try { return HoconFolder.Load(folder); }
        catch (InvalidDataException e) { throw new OptionsException(e.Message); }
    }

    public static Config Merge(IReadOnlyList<(string File, Config Config)> files) => HoconFolder.Merge(files);
}
