using System.Globalization;

namespace ActorQuery.Host.Cli;

/// <summary>A bad command line: printed as one line, exit code 2.</summary>
internal sealed class CliException(string message) : Exception(message);

/// <summary>
/// Options of one verb, "--name value" or "--flag". Written by hand rather than with System.CommandLine: the
/// grammar is this small, serve's options come from one table (src/Host/Serve/ServeSettings.cs) that also
/// drives the checks of every configuration layer, help and the README, and what matters is a one-line error
/// naming the option on every bad value. Every option must be read (or declared with <see cref="Known"/>) before <see cref="EnsureAllUsed"/>.
/// Compiled into each executable (src/Host and the tools) as an internal type.
/// </summary>
internal sealed class CliArgs
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _repeated = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    /// <param name="repeatable">Options that may be given more than once (<c>--api-key A --api-key B</c>); read them with <see cref="Strings"/>.</param>
    public CliArgs(IEnumerable<string> args, ISet<string> flags, ISet<string>? repeatable = null)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                throw new CliException($"unexpected argument '{a}'");
            var eq = a.IndexOf('=');
            string name = eq > 0 ? a[2..eq] : a[2..];
            string? value;
            if (eq > 0) value = a[(eq + 1)..];
            else if (flags.Contains(name)) value = null;
            else if (i + 1 < list.Count) value = list[++i];
            else throw new CliException($"option --{name} needs a value");
            if (repeatable?.Contains(name) == true && value is not null)
            {
                _values[name] = value;
                (_repeated.TryGetValue(name, out var all) ? all : _repeated[name] = []).Add(value);
            }
            else if (!_values.TryAdd(name, value)) throw new CliException($"option --{name} given twice");
        }
    }

    public bool Has(string name) { _used.Add(name); return _values.ContainsKey(name); }

    public bool Flag(string name) => Has(name);

    public string? String(string name) { _used.Add(name); return _values.GetValueOrDefault(name); }

    /// <summary>Every value of a repeatable option, in order; empty when absent.</summary>
    public IReadOnlyList<string> Strings(string name) { _used.Add(name); return _repeated.GetValueOrDefault(name) ?? []; }

    public string RequiredString(string name) =>
        String(name) ?? throw new CliException($"option --{name} is required");

    public int? Int(string name, int min = int.MinValue, int max = int.MaxValue)
    {
        var s = String(name);
        if (s is null) return null;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
            throw new CliException($"option --{name}: '{s}' is not an integer in [{min}, {max}]");
        return v;
    }

    public long? Long(string name)
    {
        var s = String(name);
        if (s is null) return null;
        if (!long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            throw new CliException($"option --{name}: '{s}' is not an integer");
        return v;
    }

    public float? Float(string name, float min = float.MinValue, float max = float.MaxValue)
    {
        var s = String(name);
        if (s is null) return null;
        if (!float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !float.IsFinite(v) || v < min || v > max)
            throw new CliException($"option --{name}: '{s}' is not a number in [{min}, {max}]");
        return v;
    }

    public IReadOnlyList<int>? IntList(string name)
    {
        var s = String(name);
        if (s is null) return null;
        var parts = s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var list = new List<int>(parts.Length);
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < 0)
                throw new CliException($"option --{name}: '{p}' is not a non-negative integer");
            list.Add(v);
        }
        if (list.Count == 0) throw new CliException($"option --{name} is empty");
        return list;
    }

    /// <summary>Marks options handled elsewhere (e.g. passed through to the configuration system).</summary>
    public void Known(params string[] names) { foreach (var n in names) _used.Add(n); }

    public void EnsureAllUsed()
    {
        var unknown = _values.Keys.Where(k => !_used.Contains(k)).ToList();
        if (unknown.Count > 0) throw new CliException($"unknown option --{unknown[0]}");
    }
}

/// <summary>
/// The verb dispatch of every executable (actorquery and the tools): the first argument names the verb unless it is
/// an option; <c>help</c>, <c>--help</c> and <c>-h</c> print the usage (given the arguments after them); a
/// <see cref="CliException"/> is one line on standard error and exit code 2.
/// </summary>
internal static class Verbs
{
    /// <param name="elsewhere">Appended to the unknown-verb error: where the verbs of the other executables live.</param>
    public static int Run(string[] args, string defaultVerb, IReadOnlyDictionary<string, Func<string[], int>> verbs, Func<string[], int> usage,
        string? elsewhere = null)
    {
        var verb = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : defaultVerb;
        var rest = args.Length > 0 && verb == args[0] ? args[1..] : args;
        try
        {
            if (verb is "help" or "--help" or "-h") return usage(rest);
            if (verbs.TryGetValue(verb, out var run)) return run(rest);
            throw new CliException($"unknown verb '{verb}' (try: {string.Join(", ", verbs.Keys)}, help){elsewhere}");
        }
        catch (CliException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}
