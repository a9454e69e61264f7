namespace ActorQuery.Actors.Workers;

/// <summary>
/// Finds stop strings in a sequence's streamed text and holds back the tail that could still become one, so
/// that a client never sees the first half of a stop string. Written here because the tokenizer issue's matcher
/// is not on main yet; it has no state beyond one sequence's unsent tail.
/// </summary>
public sealed class StopStringMatcher
{
    private readonly IReadOnlyList<string> _stops;
    private readonly int _holdBack;
    private string _pending = "";

    public StopStringMatcher(IReadOnlyList<string> stops)
    {
        _stops = stops.Where(s => s.Length > 0).ToArray();
        _holdBack = _stops.Count == 0 ? 0 : _stops.Max(s => s.Length) - 1;
    }

    public bool Matched { get; private set; }

    /// <summary>Adds new text; returns what can be sent now. After a match, returns the text before the stop string and sets <see cref="Matched"/>.</summary>
    public string Push(string text)
    {
        if (Matched) return "";
        if (_stops.Count == 0) return text;
        _pending += text;
        int first = -1;
        foreach (var s in _stops)
        {
            int i = _pending.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (first < 0 || i < first)) first = i;
        }
        if (first >= 0)
        {
            Matched = true;
            var before = _pending[..first];
            _pending = "";
            return before;
        }
        // Hold back the longest tail that is a prefix of some stop string.
        int keep = 0;
        for (int len = Math.Min(_holdBack, _pending.Length); len > 0; len--)
        {
            var tail = _pending[^len..];
            if (_stops.Any(s => s.StartsWith(tail, StringComparison.Ordinal))) { keep = len; break; }
        }
        var ready = _pending[..^keep];
        _pending = _pending[^keep..];
        return ready;
    }

    /// <summary>The held-back tail at the end of the sequence (it did not become a stop string).</summary>
    public string Flush()
    {
        var rest = Matched ? "" : _pending;
        _pending = "";
        return rest;
    }
}
