using System.Numerics;

namespace ActorQuery.Tokenization.Grammar;

/// <summary>
/// The pieces of JSON as byte automata, in the one bounded form constrained outputs take: no whitespace except at
/// most one space after <c>:</c> and <c>,</c>; integers of at most 15 digits unless a schema bounds them (so every
/// client parses them exactly); numbers of at most 15 integer digits, 10 fraction digits and a two-digit exponent;
/// strings escape only as JSON requires and never as a lone surrogate.
/// </summary>
internal sealed class JsonGrammar(ByteNfa nfa)
{
    public const int MaxIntegerDigits = 15;
    public static readonly BigInteger DefaultIntegerBound = BigInteger.Pow(10, MaxIntegerDigits) - 1;

    private int _anyValueRule = -1;

    public ByteNfa Nfa => nfa;

    /// <summary>At most one space.</summary>
    public Frag Ws() => nfa.Optional(nfa.Literal(" "));

    public Frag Lit(string s) => nfa.Literal(s);

    /// <summary>One character of a JSON string: unescaped (not a quote, backslash or control character) or escaped.</summary>
    public Frag StringChar()
    {
        var plain = Utf8Ranges.Char(nfa, [(0x20, 0x21), (0x23, 0x5B), (0x5D, Utf8Ranges.MaxScalar)]);
        var simple = nfa.Ranges([((byte)'"', (byte)'"'), ((byte)'\\', (byte)'\\'), ((byte)'/', (byte)'/'), ((byte)'b', (byte)'b'),
            ((byte)'f', (byte)'f'), ((byte)'n', (byte)'n'), ((byte)'r', (byte)'r'), ((byte)'t', (byte)'t')]);
        // \uXXXX outside D800–DFFF: a lone surrogate is valid JSON text that many parsers reject.
        var hex = () => nfa.Ranges([((byte)'0', (byte)'9'), ((byte)'a', (byte)'f'), ((byte)'A', (byte)'F')]);
        var notD = nfa.Ranges([((byte)'0', (byte)'9'), ((byte)'a', (byte)'c'), ((byte)'A', (byte)'C'), ((byte)'e', (byte)'f'), ((byte)'E', (byte)'F')]);
        var d = nfa.Ranges([((byte)'d', (byte)'d'), ((byte)'D', (byte)'D')]);
        var unicode = nfa.Seq(nfa.Literal("u"), nfa.Alt(
            nfa.Seq(notD, hex(), hex(), hex()),
            nfa.Seq(d, nfa.Range((byte)'0', (byte)'7'), hex(), hex())));
        return nfa.Alt(plain, nfa.Seq(nfa.Literal("\\"), nfa.Alt(simple, unicode)));
    }

    /// <summary>A JSON string of <paramref name="min"/>..<paramref name="max"/> characters (an escape is one).</summary>
    public Frag String(int min = 0, int? max = null) =>
        nfa.Seq(Lit("\""), nfa.Repeat(StringChar, min, max), Lit("\""));

    private Frag Digits(int min, int max) => nfa.Repeat(() => nfa.Range((byte)'0', (byte)'9'), min, max);

    /// <summary>Any number in the bounded form.</summary>
    public Frag Number()
    {
        var intPart = nfa.Alt(Lit("0"), nfa.Seq(nfa.Range((byte)'1', (byte)'9'), Digits(0, MaxIntegerDigits - 1)));
        var frac = nfa.Optional(nfa.Seq(Lit("."), Digits(1, 10)));
        var exp = nfa.Optional(nfa.Seq(nfa.Ranges([((byte)'e', (byte)'e'), ((byte)'E', (byte)'E')]),
            nfa.Optional(nfa.Ranges([((byte)'+', (byte)'+'), ((byte)'-', (byte)'-')])), nfa.Range((byte)'1', (byte)'9'), Digits(0, 1)));
        return nfa.Seq(nfa.Optional(Lit("-")), intPart, frac, exp);
    }

    /// <summary>The integers lo..hi, written without leading zeros (and never as -0).</summary>
    public Frag Integer(BigInteger lo, BigInteger hi)
    {
        var parts = new List<Frag>();
        if (lo < 0) parts.Add(nfa.Seq(Lit("-"), NonNegative(-BigInteger.Min(hi, -1), -lo)));
        if (hi >= 0) parts.Add(NonNegative(BigInteger.Max(lo, 0), hi));
        return nfa.Alt(parts);
    }

    private Frag NonNegative(BigInteger a, BigInteger b)
    {
        string sa = a.ToString(), sb = b.ToString();
        var parts = new List<Frag>();
        for (int len = sa.Length; len <= sb.Length; len++)
        {
            string lo = len == sa.Length ? sa : "1" + new string('0', len - 1);
            string hi = len == sb.Length ? sb : new string('9', len);
            parts.Add(SameLength(lo, hi));
        }
        return nfa.Alt(parts);
    }

    /// <summary>Digit strings of one length between lo and hi (lo ≤ hi, same length).</summary>
    private Frag SameLength(string lo, string hi)
    {
        if (lo.Length == 0) return nfa.Empty();
        if (lo[0] == hi[0]) return nfa.Seq(nfa.Range((byte)lo[0], (byte)lo[0]), SameLength(lo[1..], hi[1..]));
        int rest = lo.Length - 1;
        bool loFloor = lo.AsSpan(1).IndexOfAnyExcept('0') < 0, hiCeil = hi.AsSpan(1).IndexOfAnyExcept('9') < 0;
        if (loFloor && hiCeil) return nfa.Seq(nfa.Range((byte)lo[0], (byte)hi[0]), Digits(rest, rest));
        var parts = new List<Frag>
        {
            nfa.Seq(nfa.Range((byte)lo[0], (byte)lo[0]), SameLength(lo[1..], new string('9', rest))),
        };
        if (hi[0] - lo[0] > 1) parts.Add(nfa.Seq(nfa.Range((byte)(lo[0] + 1), (byte)(hi[0] - 1)), Digits(rest, rest)));
        parts.Add(nfa.Seq(nfa.Range((byte)hi[0], (byte)hi[0]), SameLength(new string('0', rest), hi[1..])));
        return nfa.Alt(parts);
    }

    /// <summary>Any JSON value (a rule, so that it nests without bound).</summary>
    public Frag AnyValue()
    {
        if (_anyValueRule < 0)
        {
            _anyValueRule = nfa.DeclareRule();
            nfa.DefineRule(_anyValueRule, nfa.Alt(
                AnyObject(), AnyArray(), String(), Number(), Integer(-DefaultIntegerBound, DefaultIntegerBound),
                Lit("true"), Lit("false"), Lit("null")));
        }
        return nfa.Call(_anyValueRule);
    }

    /// <summary>An object with any keys whose values come from <paramref name="value"/> (default: any value).</summary>
    public Frag AnyObject(Func<Frag>? value = null)
    {
        value ??= AnyValue;
        Frag Member() => nfa.Seq(String(), Lit(":"), Ws(), value());
        var members = nfa.Optional(nfa.Seq(Member(), nfa.Star(nfa.Seq(Lit(","), Ws(), Member()))));
        return nfa.Seq(Lit("{"), members, Lit("}"));
    }

    /// <summary>An array of <paramref name="item"/> (default: any value), minItems..maxItems long.</summary>
    public Frag AnyArray(Func<Frag>? item = null, int min = 0, int? max = null)
    {
        item ??= AnyValue;
        if (max == 0) return Lit("[]");
        var rest = nfa.Repeat(() => nfa.Seq(Lit(","), Ws(), item()), Math.Max(0, min - 1), max is { } m ? m - 1 : null);
        var items = nfa.Seq(item(), rest);
        return nfa.Seq(Lit("["), min == 0 ? nfa.Optional(items) : items, Lit("]"));
    }
}
