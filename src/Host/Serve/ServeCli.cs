using System.Globalization;
using ActorQuery.Contracts;
using ActorQuery.Host.Cli;

namespace ActorQuery.Host.Serve;

/// <summary>
/// The command line of <c>serve</c>: every <see cref="ServeSettings"/> row with a flag, mapped onto its configuration
/// key so that the command line is simply the last configuration layer. Types are checked here so that a bad value
/// is one line naming the flag and exit code 2; limits are checked with every other layer by <see cref="ServeSettings.Validate"/>.
/// </summary>
public static class ServeCli
{
    /// <summary>Command line → configuration keys ("ActorQuery:MaxQueue" = "128"). Throws <see cref="CliException"/>.</summary>
    public static Dictionary<string, string?> Parse(string[] args)
    {
        var flags = ServeSettings.All.Where(s => s is { Flag: not null, Kind: SettingKind.Flag }).Select(s => s.Flag!).ToHashSet();
        var repeatable = ServeSettings.All.Where(s => s is { Flag: not null, Kind: SettingKind.TextList }).Select(s => s.Flag!).ToHashSet();
        repeatable.Add("model");
        foreach (var flag in ServeOptions.PerModelKeys.Keys) repeatable.Add(flag);
        var cli = new CliArgs(args, flags, repeatable);
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        // --model DIR is the one model; --model NAME=DIR (or --model given more than once, or beside --models-dir) a pool's.
        var models = cli.Strings("model");
        if (models.Count == 1 && !models[0].Contains('=') && cli.String("models-dir") is null)
            overrides[ServeSettings.Get("ModelFolder").ConfigKey] = models[0];
        else
            for (int i = 0; i < models.Count; i++) overrides[$"{ServeSettings.Get("Models").ConfigKey}:cli{i}"] = models[i];
        // --dtype, --workers, --kv-cache-size: VALUE for every model, NAME=VALUE (repeatable) for one model of a pool.
        int perModel = 0;
        var perModelFlags = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (flag, key) in ServeOptions.PerModelKeys)
        {
            perModelFlags.Add(flag);
            var plain = new List<string>();
            foreach (var value in cli.Strings(flag))
            {
                int eq = value.IndexOf('=');
                if (eq > 0) overrides[$"{ServeSettings.Get("ModelOptions").ConfigKey}:cli{perModel++}"] = $"{value[..eq]}:{flag}={value[(eq + 1)..]}";
                else plain.Add(value);
            }
            if (plain.Count > 1) throw new CliException($"option --{flag} given twice (NAME=VALUE sets one pooled model's)");
            if (plain.Count == 1)
            {
                var setting = ServeSettings.Get(key);
                overrides[setting.ConfigKey] = setting.Kind == SettingKind.Int
                    ? int.TryParse(plain[0], System.Globalization.NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)
                        ? n.ToString(CultureInfo.InvariantCulture) : throw new CliException($"option --{flag}: '{plain[0]}' is not an integer")
                    : plain[0];
            }
        }
        foreach (var s in ServeSettings.All)
        {
            if (s.Flag is not { } option || s.Key == "ModelFolder" || perModelFlags.Contains(option)) continue;
            if (s.Kind == SettingKind.TextList)
            {
                // A list binds from every child of its key; the command line's own child names add its items to those of
                // the other layers (ACTORQUERY__APIKEYS__0) instead of overwriting them.
                var items = cli.Strings(option);
                for (int i = 0; i < items.Count; i++) overrides[$"{s.ConfigKey}:cli{i}"] = items[i];
                continue;
            }
            string? value = s.Kind switch
            {
                SettingKind.Int => cli.Int(option)?.ToString(CultureInfo.InvariantCulture),
                SettingKind.Number => cli.Float(option)?.ToString("R", CultureInfo.InvariantCulture),
                SettingKind.Size => SizeText(cli.String(option), option),
                SettingKind.Flag => cli.Flag(option) ? "true" : null,
                SettingKind.Switch => cli.String(option) is not { } b ? null
                    : bool.TryParse(b, out bool on) ? (on ? "true" : "false") : throw new CliException($"option --{option}: '{b}' is not true or false"),
                _ => cli.String(option),
            };
            if (value is not null) overrides[s.ConfigKey] = value;
        }
        cli.EnsureAllUsed();
        return overrides;
    }

    private static string? SizeText(string? s, string option)
    {
        if (s is null) return null;
        try { ByteSize.Parse(s); return s; }
        catch (FormatException e) { throw new CliException($"option --{option}: {e.Message}"); }
    }

    public static string Help() => ServeSettings.Help();
}
