namespace ActorQuery.Tokenization;

/// <summary>
/// Finds user-given stop strings in a stream of text chunks. Text that could still be the start of a stop string
/// is held back, so what is released never contains any part of a stop string; once one is found,
/// <see cref="Stopped"/> is set and the text before it is the last text released. One instance per sequence.
/// </summary>
public sealed class StopStringMatcher
{
    private readonly string[] _stops;
    private readonly int _longest;
    private string _held = "";

    public StopStringMatcher(IEnumerable<string> stopStrings)
    {
        ArgumentNullException.ThrowIfNull(stopStrings);
        _stops = stopStrings.Where(s => !string.IsNullOrEmpty(s)).Distinct(StringComparer.Ordinal).ToArray();
        _longest = _stops.Length == 0 ? 0 : _stops.Max(s => s.Length);
    }

    /// <summary>True once a stop string has been seen; later chunks are ignored.</summary>
    public bool Stopped { get; private set; }

    /// <summary>The stop string that ended the text, once <see cref="Stopped"/>.</summary>
    public string? MatchedStop { get; private set; }

    /// <summary>Adds a chunk; returns the text that is now safe to show (possibly empty).</summary>
    public string Push(string chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        if (Stopped) return "";
        if (_stops.Length == 0) return chunk;
        var text = _held + chunk;

        // The earliest stop string wins; where two start at the same place, the longer one.
        int first = -1;
        foreach (var stop in _stops)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first || (at == first && stop.Length > MatchedStop!.Length)))
            {
                first = at;
                MatchedStop = stop;
            }
        }
        if (first >= 0)
        {
            Stopped = true;
            _held = "";
            return text[..first];
        }

        // Hold back the longest tail that is a proper prefix of some stop string.
        int keep = 0;
        for (int len = Math.Min(_longest - 1, text.Length); len > 0 && keep == 0; len--)
        {
            foreach (var stop in _stops)
            {
                if (stop.Length > len && string.CompareOrdinal(text, text.Length - len, stop, 0, len) == 0) { keep = len; break; }
            }
        }
        _held = text[(text.Length - keep)..];
        return text[..(text.Length - keep)];
    }

    /// <summary>At the end of the text: the held-back tail, which turned out not to be a stop string.</summary>
    public string Flush()
    {
        var rest = Stopped ? "" : _held;
        _held = "";
        return rest;
    }
}
