namespace ActorQuery.Tokenization.Grammar;

/// <summary>
/// Code-point ranges as byte automata: a range of Unicode scalar values becomes the well-formed UTF-8 sequences that
/// encode exactly those values (split as Rust's regex-syntax <c>Utf8Sequences</c> does: by encoded length, then until
/// each piece is a product of byte ranges). Surrogates are never produced.
/// </summary>
internal static class Utf8Ranges
{
    public const int MaxScalar = 0x10FFFF;

    /// <summary>One character from <paramref name="ranges"/> (inclusive code-point ranges).</summary>
    public static Frag Char(ByteNfa nfa, IEnumerable<(int Lo, int Hi)> ranges)
    {
        int start = nfa.NewNode(), end = nfa.NewNode();
        foreach (var (lo, hi) in ranges)
            foreach (var seq in Sequences(lo, hi))
            {
                int cur = start;
                for (int i = 0; i < seq.Count; i++)
                {
                    int next = i == seq.Count - 1 ? end : nfa.NewNode();
                    nfa.Nodes[cur].Bytes.Add((seq[i].Lo, seq[i].Hi, next));
                    cur = next;
                }
            }
        return new Frag(start, end);
    }

    /// <summary>The complement of <paramref name="ranges"/> within all scalar values.</summary>
    public static List<(int Lo, int Hi)> Complement(IEnumerable<(int Lo, int Hi)> ranges)
    {
        var sorted = Normalize(ranges);
        var result = new List<(int, int)>();
        int next = 0;
        foreach (var (lo, hi) in sorted)
        {
            if (lo > next) result.Add((next, lo - 1));
            next = hi + 1;
        }
        if (next <= MaxScalar) result.Add((next, MaxScalar));
        return result;
    }

    /// <summary>Sorted, merged, clipped to scalar values.</summary>
    public static List<(int Lo, int Hi)> Normalize(IEnumerable<(int Lo, int Hi)> ranges)
    {
        var list = ranges.Where(r => r.Lo <= r.Hi).Select(r => (Math.Max(0, r.Lo), Math.Min(MaxScalar, r.Hi))).OrderBy(r => r.Item1).ToList();
        var merged = new List<(int, int)>();
        foreach (var r in list)
        {
            if (merged.Count > 0 && r.Item1 <= merged[^1].Item2 + 1)
                merged[^1] = (merged[^1].Item1, Math.Max(merged[^1].Item2, r.Item2));
            else merged.Add(r);
        }
        return merged;
    }

    private static IEnumerable<List<(byte Lo, byte Hi)>> Sequences(int lo, int hi)
    {
        var work = new Stack<(int, int)>();
        work.Push((lo, hi));
        while (work.Count > 0)
        {
            var (a, b) = work.Pop();
            if (a > b) continue;
            // Surrogates are not scalar values.
            if (a <= 0xDFFF && b >= 0xD800)
            {
                work.Push((0xE000, b));
                work.Push((a, 0xD7FF));
                continue;
            }
            bool split = false;
            foreach (int max in (ReadOnlySpan<int>)[0x7F, 0x7FF, 0xFFFF])
                if (a <= max && max < b)
                {
                    work.Push((max + 1, b));
                    work.Push((a, max));
                    split = true;
                    break;
                }
            if (split) continue;
            if (b <= 0x7F)
            {
                yield return [((byte)a, (byte)b)];
                continue;
            }
            for (int i = 1; i < 4 && !split; i++)
            {
                int m = (1 << (6 * i)) - 1;
                if ((a & ~m) != (b & ~m))
                {
                    if ((a & m) != 0) { work.Push(((a | m) + 1, b)); work.Push((a, a | m)); split = true; }
                    else if ((b & m) != m) { work.Push((b & ~m, b)); work.Push((a, (b & ~m) - 1)); split = true; }
                }
            }
            if (split) continue;
            var ea = Encode(a);
            var eb = Encode(b);
            var seq = new List<(byte, byte)>(ea.Length);
            for (int i = 0; i < ea.Length; i++) seq.Add((ea[i], eb[i]));
            yield return seq;
        }
    }

    private static byte[] Encode(int cp) => System.Text.Encoding.UTF8.GetBytes(char.ConvertFromUtf32(cp));
}
