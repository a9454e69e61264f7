using System.Globalization;
using System.Text;

namespace ActorQuery.Tokenization.Jinja;

internal enum TokenKind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof }

internal readonly record struct Token(TokenKind Kind, string Value, int Line)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;
    public bool IsName(string name) => Kind == TokenKind.Name && Value == name;
    public bool IsOp(string op) => Kind == TokenKind.Operator && Value == op;
}

/// <summary>
/// Splits a Jinja template into text and tag tokens with the whitespace rules Hugging Face renders chat templates
/// under: <c>trim_blocks</c> and <c>lstrip_blocks</c> on, plus <c>{%-</c>/<c>-%}</c> stripping.
/// </summary>
internal sealed class JinjaLexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "|", ".", ",", ":", "(", ")", "[", "]", "{", "}", "<", ">", "="];

    private readonly string _src;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private int _line = 1;

    private JinjaLexer(string source) => _src = source;

    public static List<Token> Tokenize(string source)
    {
        var lexer = new JinjaLexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    private void Run()
    {
        bool stripNextText = false;
        while (true)
        {
            int chunkStart = _pos;
            bool lineStarting = chunkStart == 0 || _src[chunkStart - 1] == '\n';
            int tag = FindTagStart(_pos);
            var text = _src[_pos..(tag < 0 ? _src.Length : tag)];
            if (stripNextText) text = text.TrimStart();
            if (tag < 0)
            {
                AddText(text, chunkStart);
                break;
            }

            char kind = _src[tag + 1];
            char modifier = tag + 2 < _src.Length ? _src[tag + 2] : '\0';
            if (modifier == '-')
            {
                text = text.TrimEnd();
            }
            else if (modifier != '+' && kind != '{')
            {
                // lstrip_blocks: spaces between the line's start and a block or comment tag go.
                int lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && text.AsSpan(lineStart).Trim().IsEmpty && lineStart < text.Length)
                    text = text[..lineStart];
            }
            AddText(text, chunkStart);
            _line += Count(_src, chunkStart, tag - chunkStart);
            _pos = tag + 2 + (modifier is '-' or '+' ? 1 : 0);

            char endModifier;
            if (kind == '#')
            {
                int end = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
                if (end < 0) throw Error("comment is not closed with '#}'");
                endModifier = end > _pos && _src[end - 1] is '-' or '+' ? _src[end - 1] : '\0';
                _line += Count(_src, _pos, end + 2 - _pos);
                _pos = end + 2;
            }
            else
            {
                _tokens.Add(new Token(kind == '{' ? TokenKind.VarBegin : TokenKind.BlockBegin, "", _line));
                endModifier = LexInsideTag(kind == '{' ? "}}" : "%}");
                _tokens.Add(new Token(kind == '{' ? TokenKind.VarEnd : TokenKind.BlockEnd, "", _line));
            }

            stripNextText = endModifier == '-';
            // trim_blocks: the first newline after a block or comment tag goes.
            if (!stripNextText && endModifier != '+' && kind != '{' && _pos < _src.Length && _src[_pos] == '\n')
            {
                _pos++;
                _line++;
            }
        }
        _tokens.Add(new Token(TokenKind.Eof, "", _line));
    }

    private void AddText(string text, int chunkStart)
    {
        if (text.Length > 0) _tokens.Add(new Token(TokenKind.Text, text, _line));
    }

    private int FindTagStart(int from)
    {
        for (int i = _src.IndexOf('{', from); i >= 0 && i + 1 < _src.Length; i = _src.IndexOf('{', i + 1))
            if (_src[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>Lexes expression tokens up to the closing delimiter; returns the '-' or '+' written before it.</summary>
    private char LexInsideTag(string close)
    {
        while (true)
        {
            if (_pos >= _src.Length) throw Error($"tag is not closed with '{close}'");
            char c = _src[_pos];
            if (c == '\n') _line++;
            if (char.IsWhiteSpace(c)) { _pos++; continue; }
            if (c is '-' or '+' && string.CompareOrdinal(_src, _pos + 1, close, 0, 2) == 0)
            {
                _pos += 3;
                return c;
            }
            if (string.CompareOrdinal(_src, _pos, close, 0, 2) == 0)
            {
                _pos += 2;
                return '\0';
            }
            if (char.IsLetter(c) || c == '_')
            {
                int start = _pos;
                while (_pos < _src.Length && (char.IsLetterOrDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                _tokens.Add(new Token(TokenKind.Name, _src[start.._pos], _line));
            }
            else if (char.IsAsciiDigit(c))
            {
                int start = _pos;
                while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                bool isFloat = _pos + 1 < _src.Length && _src[_pos] == '.' && char.IsAsciiDigit(_src[_pos + 1]);
                if (isFloat)
                {
                    _pos++;
                    while (_pos < _src.Length && char.IsAsciiDigit(_src[_pos])) _pos++;
                }
                var digits = _src[start.._pos].Replace("_", "");
                _tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, digits, _line));
            }
            else if (c is '\'' or '"')
            {
                _tokens.Add(new Token(TokenKind.String, ReadString(c), _line));
            }
            else
            {
                var op = Operators.FirstOrDefault(o => string.CompareOrdinal(_src, _pos, o, 0, o.Length) == 0)
                    ?? throw Error($"unexpected character '{c}'");
                _tokens.Add(new Token(TokenKind.Operator, op, _line));
                _pos += op.Length;
            }
        }
    }

    private string ReadString(char quote)
    {
        var sb = new StringBuilder();
        _pos++;
        while (true)
        {
            if (_pos >= _src.Length) throw Error("string literal is not closed");
            char c = _src[_pos++];
            if (c == quote) return sb.ToString();
            if (c == '\n') _line++;
            if (c != '\\') { sb.Append(c); continue; }
            if (_pos >= _src.Length) throw Error("string literal is not closed");
            char e = _src[_pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '0': sb.Append('\0'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'x': sb.Append((char)Hex(2)); break;
                case 'u': sb.Append((char)Hex(4)); break;
                case 'U': sb.Append(char.ConvertFromUtf32(Hex(8))); break;
                case '\\' or '\'' or '"': sb.Append(e); break;
                case '\n': _line++; break;
                default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes as written
            }
        }
    }

    private int Hex(int digits)
    {
        if (_pos + digits > _src.Length || !int.TryParse(_src.AsSpan(_pos, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int v))
            throw Error("bad escape in string literal");
        _pos += digits;
        return v;
    }

    private static int Count(string s, int start, int length)
    {
        int n = 0;
        for (int i = start; i < start + length && i < s.Length; i++) if (s[i] == '\n') n++;
        return n;
    }

    private ChatTemplateException Error(string message) => new($"chat template line {_line}: {message}");
}
