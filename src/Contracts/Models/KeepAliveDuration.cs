using System.Globalization;
using System.Text.RegularExpressions;

namespace ActorQuery.Contracts;

/// <summary>
/// Ollama's <c>keep_alive</c>: how long a model stays loaded once idle. A number is seconds; a text is a number of
/// seconds or a Go duration ("5m", "1h30m", "90s", "500ms"); any negative value keeps it loaded for ever
/// (<see cref="Timeout.InfiniteTimeSpan"/>); zero unloads it as soon as it is idle. Written by hand because .NET has no
/// parser for Go's duration syntax, which Ollama's clients send.
/// </summary>
public static partial class KeepAliveDuration
{
    [GeneratedRegex(@"^(?<n>\d+(\.\d*)?|\.\d+)(?<u>ns|us|µs|ms|s|m|h)", RegexOptions.CultureInvariant)]
    private static partial Regex Part();

    /// <summary>Throws <see cref="FormatException"/> naming what is wrong.</summary>
    public static TimeSpan Parse(string text)
    {
        var s = text.Trim();
        if (s.Length == 0) throw new FormatException("is empty: give a duration like 5m, 30s or 1h, -1 (for ever) or 0 (unload when idle)");
        bool negative = s[0] == '-';
        if (negative || s[0] == '+') s = s[1..];
        if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds))
            return FromSeconds(negative ? -seconds : seconds);
        double total = 0;
        var rest = s;
        while (rest.Length > 0)
        {
            var m = Part().Match(rest);
            if (!m.Success) throw new FormatException($"'{text}' is not a duration like 5m, 30s, 1h30m, -1 (for ever) or 0 (unload when idle)");
            double n = double.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture);
            total += n * m.Groups["u"].Value switch
            {
                "ns" => 1e-9, "us" or "µs" => 1e-6, "ms" => 1e-3, "s" => 1, "m" => 60, _ => 3600,
            };
            rest = rest[m.Length..];
        }
        return FromSeconds(negative ? -total : total);
    }

    /// <summary>Seconds as a keep-alive: negative is for ever.</summary>
    public static TimeSpan FromSeconds(double seconds)
    {
        if (double.IsNaN(seconds)) throw new FormatException("is not a number");
        if (seconds < 0) return Timeout.InfiniteTimeSpan;
        if (seconds > TimeSpan.MaxValue.TotalSeconds / 2) throw new FormatException($"{seconds} s is too long; use -1 for ever");
        return TimeSpan.FromSeconds(seconds);
    }

    /// <summary>"5m", "30s", "forever", as logs and /v1/models show it.</summary>
    public static string Format(TimeSpan? t) => t is not { } v || v == Timeout.InfiniteTimeSpan ? "forever"
        : v.TotalSeconds % 3600 == 0 && v.TotalSeconds > 0 ? $"{v.TotalHours:0}h"
        : v.TotalSeconds % 60 == 0 && v.TotalSeconds > 0 ? $"{v.TotalMinutes:0}m"
        : $"{v.TotalSeconds:0.###}s";
}
