using Akka.Configuration;

namespace ActorQuery.Actors.Hosting;

/// <summary>
/// The Akka configuration of a node: every <c>*.hocon</c> of one folder (the repository's <c>hocon/</c>, copied next
/// to the executable), read in ordinal file-name order (actors.hocon before host.hocon) so that the result never
/// depends on the file system's listing order. Where two files set one key, the later file wins. These files are the
/// only source: nothing is embedded, so a key deleted from them is gone.
/// </summary>
public static class HoconFolder
{
    /// <summary>Throws <see cref="InvalidDataException"/> naming the folder or the file at fault.</summary>
    public static IReadOnlyList<(string File, Config Config)> Load(string folder)
    {
        if (!Directory.Exists(folder))
            throw new InvalidDataException($"the Akka configuration folder '{folder}' is missing (hocon/*.hocon is copied next to the executable)");
        var files = Directory.GetFiles(folder, "*.hocon").OrderBy(Path.GetFileName, StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new InvalidDataException($"no *.hocon file in '{folder}'");
        var result = new List<(string, Config)>(files.Count);
        foreach (var file in files)
        {
            try { result.Add((Path.GetFileName(file), ConfigurationFactory.ParseString(File.ReadAllText(file)))); }
            catch (Exception e) { throw new InvalidDataException($"{file}: {e.Message}", e); }
        }
        return result;
    }

    /// <summary>All files as one configuration, later files first in the fallback chain.</summary>
    public static Config Merge(IReadOnlyList<(string File, Config Config)> files) =>
        files.Reverse().Select(f => f.Config).Aggregate(Config.Empty, (acc, c) => acc.IsEmpty ? c : acc.WithFallback(c));
}
