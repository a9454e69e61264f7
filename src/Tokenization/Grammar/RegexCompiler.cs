namespace ActorQuery.Tokenization.Grammar;

/// <summary>
/// Compiles a regular expression that the whole output must match into the byte network. The subset: literals and
/// escapes (<c>\. \\ \n \t \r \f \v \/ \-</c>, <c>\uXXXX</c>, <c>\xHH</c>), classes (<c>[a-z_]</c>, <c>[^"]</c>,
/// <c>\d \w \s \D \W \S</c>), <c>.</c> (any character but a newline), <c>* + ? {m} {m,} {m,n}</c> (lazy forms
/// match the same texts), <c>|</c>, groups <c>( )</c>, <c>(?: )</c>, <c>(?&lt;name&gt; )</c>, and <c>^</c>/<c>$</c> at the
/// ends (the match is anchored anyway). Backreferences, lookaround, word boundaries, inline flags and possessive
/// quantifiers throw a <see cref="GrammarException"/> naming the construct. Classes are ASCII-aware (\d is [0-9],
/// \w is [A-Za-z0-9_]) as in JSON Schema's and most engines' ECMAScript-style patterns.
/// </summary>
internal sealed class RegexCompiler
{
    /// <summary>Largest repetition count in <c>{m,n}</c>.</summary>
    public const int MaxRepeat = 1000;

    private abstract record Node;
    private sealed record Chars(List<(int Lo, int Hi)> Ranges) : Node;
    private sealed record Concat(List<Node> Items) : Node;
    private sealed record Alternation(List<Node> Options) : Node;
    private sealed record Repeat(Node Body, int Min, int? Max) : Node;

    private readonly string _p;
    private int _i;

    private RegexCompiler(string pattern) => _p = pattern;

    public static ByteNfa Compile(string pattern)
    {
        var c = new RegexCompiler(pattern);
        if (c.Peek('^')) c._i++;
        var tree = c.ParseAlternation();
        if (c._i < c._p.Length) throw c.Error(c._p[c._i].ToString(), "unbalanced ')'");
        var nfa = new ByteNfa();
        int root = nfa.DeclareRule();
        nfa.DefineRule(root, Build(nfa, tree));
        return nfa;
    }

    private GrammarException Error(string construct, string why) =>
        new($"regex at offset {_i}: {why}", construct, _i.ToString());

    private bool Peek(char c) => _i < _p.Length && _p[_i] == c;

    private Node ParseAlternation()
    {
        var options = new List<Node> { ParseConcat() };
        while (Peek('|')) { _i++; options.Add(ParseConcat()); }
        return options.Count == 1 ? options[0] : new Alternation(options);
    }

    private Node ParseConcat()
    {
        var items = new List<Node>();
        while (_i < _p.Length && _p[_i] != '|' && _p[_i] != ')')
        {
            if (_p[_i] == '$' && (_i == _p.Length - 1 || _p[_i + 1] is '|' or ')')) { _i++; continue; }
            var atom = ParseAtom();
            items.Add(ParseQuantifiers(atom));
        }
        return items.Count == 1 ? items[0] : new Concat(items);
    }

    private Node ParseQuantifiers(Node atom)
    {
        while (_i < _p.Length)
        {
            char c = _p[_i];
            int min, max;
            bool unbounded = false;
            if (c == '*') { min = 0; max = 0; unbounded = true; _i++; }
            else if (c == '+') { min = 1; max = 0; unbounded = true; _i++; }
            else if (c == '?') { min = 0; max = 1; _i++; }
            else if (c == '{' && TryParseBraces(out min, out var m)) { if (m is null) unbounded = true; max = m ?? 0; }
            else break;
            if (Peek('?')) _i++;                               // lazy: the same texts
            else if (Peek('+')) throw Error("+", "possessive quantifiers are not supported");
            atom = new Repeat(atom, min, unbounded ? null : max);
        }
        return atom;
    }

    private bool TryParseBraces(out int min, out int? max)
    {
        min = 0; max = null;
        int close = _p.IndexOf('}', _i);
        if (close < 0) return false;
        var body = _p[(_i + 1)..close];
        var parts = body.Split(',');
        if (parts.Length > 2 || !int.TryParse(parts[0], out min)) return false;
        if (parts.Length == 1) max = min;
        else if (parts[1].Length == 0) max = null;
        else if (int.TryParse(parts[1], out var m)) max = m;
        else return false;
        if (min > MaxRepeat || max > MaxRepeat) throw Error(body, $"repetition counts above {MaxRepeat} are not supported");
        if (max < min) throw Error(body, "a repetition's maximum is below its minimum");
        _i = close + 1;
        return true;
    }

    private Node ParseAtom()
    {
        char c = _p[_i];
        switch (c)
        {
            case '(':
                _i++;
                if (Peek('?'))
                {
                    if (_i + 1 < _p.Length && _p[_i + 1] == ':') _i += 2;
                    else if (_i + 1 < _p.Length && _p[_i + 1] == '<' && _i + 2 < _p.Length && _p[_i + 2] is not ('=' or '!'))
                    {
                        int end = _p.IndexOf('>', _i);
                        if (end < 0) throw Error("(?<", "unterminated group name");
                        _i = end + 1;
                    }
                    else if (_i + 1 < _p.Length && _p[_i + 1] == 'P' && _i + 2 < _p.Length && _p[_i + 2] == '<')
                    {
                        int end = _p.IndexOf('>', _i);
                        if (end < 0) throw Error("(?P<", "unterminated group name");
                        _i = end + 1;
                    }
                    else throw Error("(?" + (_i + 1 < _p.Length ? _p[_i + 1].ToString() : ""), "lookaround and inline flags are not supported");
                }
                var inner = ParseAlternation();
                if (!Peek(')')) throw Error("(", "unbalanced '('");
                _i++;
                return inner;
            case '[':
                return ParseClass();
            case '.':
                _i++;
                return new Chars(Utf8Ranges.Complement([('\n', '\n')]));
            case '\\':
                return ParseEscape(inClass: false);
            case '*' or '+' or '?':
                throw Error(c.ToString(), "a quantifier with nothing to repeat");
            case '^':
                throw Error("^", "'^' is supported only at the start (the whole output is matched)");
            case '$':
                throw Error("$", "'$' is supported only at the end (the whole output is matched)");
            default:
                int cp = char.ConvertToUtf32(_p, _i);
                _i += char.IsSurrogatePair(_p, _i) ? 2 : 1;
                return new Chars([(cp, cp)]);
        }
    }

    private static readonly List<(int, int)> Digit = [('0', '9')];
    private static readonly List<(int, int)> Word = [('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
    private static readonly List<(int, int)> Space = [('\t', '\r'), (' ', ' ')];

    private Chars ParseEscape(bool inClass)
    {
        _i++;
        if (_i >= _p.Length) throw Error("\\", "a trailing backslash");
        char e = _p[_i++];
        List<(int, int)> Single(int cp) => [(cp, cp)];
        switch (e)
        {
            case 'd': return new Chars(Digit);
            case 'D': return new Chars(Utf8Ranges.Complement(Digit));
            case 'w': return new Chars(Word);
            case 'W': return new Chars(Utf8Ranges.Complement(Word));
            case 's': return new Chars(Space);
            case 'S': return new Chars(Utf8Ranges.Complement(Space));
            case 'n': return new Chars(Single('\n'));
            case 't': return new Chars(Single('\t'));
            case 'r': return new Chars(Single('\r'));
            case 'f': return new Chars(Single('\f'));
            case 'v': return new Chars(Single('\v'));
            case '0': return new Chars(Single(0));
            case 'x': return new Chars(Single(Hex(2)));
            case 'u': return new Chars(Single(Hex(4)));
            case 'b' when inClass: return new Chars(Single('\b'));
            case 'b' or 'B': throw Error("\\" + e, "word boundaries are not supported");
            case >= '1' and <= '9': throw Error("\\" + e, "backreferences are not supported");
            case 'k': throw Error("\\k", "backreferences are not supported");
            case 'p' or 'P': throw Error("\\" + e, "Unicode property classes are not supported");
            default:
                if (char.IsAsciiLetterOrDigit(e)) throw Error("\\" + e, $"the escape '\\{e}' is not supported");
                return new Chars(Single(e));
        }
    }

    private int Hex(int digits)
    {
        if (_i + digits > _p.Length || !int.TryParse(_p.AsSpan(_i, digits), System.Globalization.NumberStyles.HexNumber, null, out var v))
            throw Error("\\x", "a hexadecimal escape needs its digits");
        _i += digits;
        if (v is >= 0xD800 and <= 0xDFFF) throw Error("\\u", "a surrogate is not a character");
        return v;
    }

    private Chars ParseClass()
    {
        _i++;
        bool negate = Peek('^');
        if (negate) _i++;
        var ranges = new List<(int, int)>();
        bool first = true;
        while (true)
        {
            if (_i >= _p.Length) throw Error("[", "unterminated character class");
            if (_p[_i] == ']' && !first) { _i++; break; }
            first = false;
            List<(int Lo, int Hi)> item;
            if (_p[_i] == '\\') item = ParseEscape(inClass: true).Ranges;
            else if (_p[_i] == '[' && _i + 1 < _p.Length && _p[_i + 1] == ':') throw Error("[:", "POSIX classes are not supported");
            else
            {
                int cp = char.ConvertToUtf32(_p, _i);
                _i += char.IsSurrogatePair(_p, _i) ? 2 : 1;
                item = [(cp, cp)];
            }
            // A range a-z (a '-' before ']' is a literal).
            if (item.Count == 1 && item[0].Lo == item[0].Hi && Peek('-') && _i + 1 < _p.Length && _p[_i + 1] != ']')
            {
                _i++;
                List<(int Lo, int Hi)> end;
                if (_p[_i] == '\\') end = ParseEscape(inClass: true).Ranges;
                else
                {
                    int cp = char.ConvertToUtf32(_p, _i);
                    _i += char.IsSurrogatePair(_p, _i) ? 2 : 1;
                    end = [(cp, cp)];
                }
                if (end.Count != 1 || end[0].Lo != end[0].Hi) throw Error("-", "a class range must end in a single character");
                if (end[0].Lo < item[0].Lo) throw Error("-", "a class range out of order");
                item = [(item[0].Lo, end[0].Lo)];
            }
            ranges.AddRange(item);
        }
        return new Chars(negate ? Utf8Ranges.Complement(ranges) : Utf8Ranges.Normalize(ranges));
    }

    private static Frag Build(ByteNfa nfa, Node n) => n switch
    {
        Chars c => Utf8Ranges.Char(nfa, c.Ranges),
        Concat c => nfa.Seq(c.Items.Select(x => Build(nfa, x)).ToList()),
        Alternation a => nfa.Alt(a.Options.Select(x => Build(nfa, x)).ToList()),
        Repeat r => nfa.Repeat(() => Build(nfa, r.Body), r.Min, r.Max),
        _ => throw new InvalidOperationException(n.GetType().Name),
    };
}
