using Akka.Configuration;

namespace ActorQuery.Host.Serve;

/// <summary>
/// Reads every <c>*.hocon</c> of a folder in ordinal file-name order (actors.hocon before host.hocon), so that the
/// result never depends on the file system's listing order. Where two files set one key, the later file wins.
/// </summary>
public static class HoconFiles
{
    public static string DefaultFolder => Path.Combine(AppContext.BaseDirectory, "hocon");

    public static IReadOnlyList<(string File, Config Config)> Load(string folder)
    {
        if (!Directory.Exists(folder))
            throw new OptionsException($"the Akka configuration folder '{folder}' is missing (hocon/*.hocon is copied next to the executable)");
        var files = Directory.GetFiles(folder, "*.hocon").OrderBy(Path.GetFileName, StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new OptionsException($"no *.hocon file in '{folder}'");
        var result = new List<(string, Config)>(files.Count);
        foreach (var file in files)
        {
            try { result.Add((Path.GetFileName(file), ConfigurationFactory.ParseString(File.ReadAllText(file)))); }
            catch (Exception e) when (e is not OptionsException) { throw new OptionsException($"{file}: {e.Message}"); }
        }
        return result;
    }

    /// <summary>All files as one configuration, later files first in the fallback chain.</summary>
    public static Config Merge(IReadOnlyList<(string File, Config Config)> files) =>
        files.Reverse().Select(f => f.Config).Aggregate(Config.Empty, (acc, c) => acc.IsEmpty ? c : acc.WithFallback(c));
}
