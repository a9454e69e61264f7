using System.Globalization;

namespace ActorQuery.Tokenization.Jinja;

/// <summary>
/// Recursive-descent parser for the Jinja subset chat templates use: if/elif/else, for (with loop.*, else and an
/// inline if), set (also namespace attributes and the block form), macro, generation; expressions with Jinja's
/// precedence (filters and tests bind tighter than arithmetic), slicing, calls, list and dict literals.
/// </summary>
internal sealed class JinjaParser
{
    private readonly List<Token> _tokens;
    private int _i;
    private int _depth;

    private JinjaParser(List<Token> tokens) => _tokens = tokens;

    public static IReadOnlyList<Node> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        var body = parser.ParseBody(out var end);
        if (end is not null) throw parser.Error($"unexpected '{{% {end} %}}'");
        return body;
    }

    private Token Peek => _tokens[_i];
    private Token PeekAt(int k) => _tokens[Math.Min(_i + k, _tokens.Count - 1)];
    private Token Next() => _tokens[_i++];

    /// <summary>Counts one level of block or expression nesting until disposed, so that a deeply nested template is a
    /// syntax error (<see cref="JinjaLimits.MaxNestingDepth"/>) instead of a stack overflow that ends the process.</summary>
    private DepthGuard Nest()
    {
        if (++_depth > JinjaLimits.MaxNestingDepth)
        {
            throw Error($"nested deeper than {JinjaLimits.MaxNestingDepth} levels");
        }
        return new DepthGuard(this);
    }

    private readonly struct DepthGuard(JinjaParser parser) : IDisposable
    {
        public void Dispose() => parser._depth--;
    }

    /// <summary>Parses nodes until EOF or a block tag this level does not own; returns that tag's name in <paramref name="endTag"/>.</summary>
    private List<Node> ParseBody(out string? endTag, params string[] stopAt)
    {
        using var _ = Nest();
        var nodes = new List<Node>();
        while (true)
        {
            var t = Peek;
            switch (t.Kind)
            {
                case TokenKind.Eof:
                    endTag = null;
                    return nodes;
                case TokenKind.Text:
                    nodes.Add(new TextNode(Next().Value));
                    break;
                case TokenKind.VarBegin:
                    Next();
                    nodes.Add(new OutputNode(ParseExpression()));
                    Expect(TokenKind.VarEnd, "'}}'");
                    break;
                case TokenKind.BlockBegin:
                    var name = PeekAt(1);
                    if (name.Kind != TokenKind.Name) throw Error("expected a tag name after '{%'");
                    if (stopAt.Contains(name.Value))
                    {
                        Next();
                        Next();
                        endTag = name.Value;
                        return nodes;
                    }
                    Next();
                    Next();
                    nodes.Add(ParseStatement(name));
                    break;
                default:
                    throw Error($"unexpected '{t.Value}'");
            }
        }
    }

    private Node ParseStatement(Token tag)
    {
        switch (tag.Value)
        {
            case "if":
            {
                var branches = new List<(Expr, IReadOnlyList<Node>)>();
                var condition = ParseExpression();
                List<Node>? elseBody = null;
                while (true)
                {
                    Expect(TokenKind.BlockEnd, "'%}'");
                    var body = ParseBody(out var end, "elif", "else", "endif");
                    branches.Add((condition, body));
                    if (end == "elif") { condition = ParseExpression(); continue; }
                    if (end == "else")
                    {
                        Expect(TokenKind.BlockEnd, "'%}'");
                        elseBody = ParseBody(out end, "endif");
                    }
                    if (end != "endif") throw Error("'{% if %}' is not closed with '{% endif %}'", tag.Line);
                    Expect(TokenKind.BlockEnd, "'%}'");
                    return new IfNode(branches, elseBody);
                }
            }
            case "for":
            {
                var targets = new List<string> { ExpectName() };
                while (Peek.IsOp(",")) { Next(); targets.Add(ExpectName()); }
                if (!Next().IsName("in")) throw Error("expected 'in' in '{% for %}'");
                var iterable = ParseConditionalFree();
                Expr? filter = null;
                if (Peek.IsName("if")) { Next(); filter = ParseConditionalFree(); }
                Expect(TokenKind.BlockEnd, "'%}'");
                var body = ParseBody(out var end, "else", "endfor");
                List<Node>? elseBody = null;
                if (end == "else")
                {
                    Expect(TokenKind.BlockEnd, "'%}'");
                    elseBody = ParseBody(out end, "endfor");
                }
                if (end != "endfor") throw Error("'{% for %}' is not closed with '{% endfor %}'", tag.Line);
                Expect(TokenKind.BlockEnd, "'%}'");
                return new ForNode(targets, iterable, filter, body, elseBody);
            }
            case "set":
            {
                var targets = new List<string> { ExpectName() };
                string? attribute = null;
                if (Peek.IsOp(".")) { Next(); attribute = ExpectName(); }
                while (Peek.IsOp(",")) { Next(); targets.Add(ExpectName()); }
                if (Peek.IsOp("="))
                {
                    Next();
                    var value = ParseTupleOrExpression();
                    Expect(TokenKind.BlockEnd, "'%}'");
                    return new SetNode(targets, attribute, value, null);
                }
                Expect(TokenKind.BlockEnd, "'%}'");
                var body = ParseBody(out var end, "endset");
                if (end != "endset") throw Error("'{% set %}' block is not closed with '{% endset %}'", tag.Line);
                Expect(TokenKind.BlockEnd, "'%}'");
                return new SetNode(targets, attribute, null, body);
            }
            case "macro":
            {
                var name = ExpectName();
                var parameters = new List<(string, Expr?)>();
                ExpectOp("(");
                while (!Peek.IsOp(")"))
                {
                    var p = ExpectName();
                    Expr? dflt = null;
                    if (Peek.IsOp("=")) { Next(); dflt = ParseExpression(); }
                    parameters.Add((p, dflt));
                    if (!Peek.IsOp(")")) ExpectOp(",");
                }
                Next();
                Expect(TokenKind.BlockEnd, "'%}'");
                var body = ParseBody(out var end, "endmacro");
                if (end != "endmacro") throw Error("'{% macro %}' is not closed with '{% endmacro %}'", tag.Line);
                Expect(TokenKind.BlockEnd, "'%}'");
                return new MacroNode(name, parameters, body);
            }
            case "generation":
            {
                Expect(TokenKind.BlockEnd, "'%}'");
                var body = ParseBody(out var end, "endgeneration");
                if (end != "endgeneration") throw Error("'{% generation %}' is not closed", tag.Line);
                Expect(TokenKind.BlockEnd, "'%}'");
                return new PlainBlockNode(body);
            }
            default:
                throw Error($"unsupported tag '{{% {tag.Value} %}}'", tag.Line);
        }
    }

    private Expr ParseTupleOrExpression()
    {
        var first = ParseExpression();
        if (!Peek.IsOp(",")) return first;
        var items = new List<Expr> { first };
        while (Peek.IsOp(",")) { Next(); items.Add(ParseExpression()); }
        return new ListExpr(items, first.Line);
    }

    private Expr ParseExpression()
    {
        using var _ = Nest();
        var value = ParseOr();
        if (!Peek.IsName("if")) return value;
        Next();
        var condition = ParseOr();
        Expr? otherwise = null;
        if (Peek.IsName("else")) { Next(); otherwise = ParseExpression(); }
        return new ConditionalExpr(value, condition, otherwise, value.Line);
    }

    /// <summary>An expression without a trailing "x if c", as in a for loop's iterable (where "if" filters).</summary>
    private Expr ParseConditionalFree() => ParseOr();

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Peek.IsName("or")) { var t = Next(); left = new BinaryExpr("or", left, ParseAnd(), t.Line); }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Peek.IsName("and")) { var t = Next(); left = new BinaryExpr("and", left, ParseNot(), t.Line); }
        return left;
    }

    private Expr ParseNot()
    {
        using var _ = Nest();
        if (Peek.IsName("not")) { var t = Next(); return new UnaryExpr("not", ParseNot(), t.Line); }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var left = ParseAdditive();
        while (true)
        {
            var t = Peek;
            if (t.Kind == TokenKind.Operator && t.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                Next();
                left = new BinaryExpr(t.Value, left, ParseAdditive(), t.Line);
            }
            else if (t.IsName("in"))
            {
                Next();
                left = new BinaryExpr("in", left, ParseAdditive(), t.Line);
            }
            else if (t.IsName("not") && PeekAt(1).IsName("in"))
            {
                Next();
                Next();
                left = new BinaryExpr("not in", left, ParseAdditive(), t.Line);
            }
            else return left;
        }
    }

    private Expr ParseAdditive()
    {
        var left = ParseConcat();
        while (Peek.Kind == TokenKind.Operator && Peek.Value is "+" or "-")
        {
            var t = Next();
            left = new BinaryExpr(t.Value, left, ParseConcat(), t.Line);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMultiplicative();
        while (Peek.IsOp("~")) { var t = Next(); left = new BinaryExpr("~", left, ParseMultiplicative(), t.Line); }
        return left;
    }

    private Expr ParseMultiplicative()
    {
        var left = ParsePower();
        while (Peek.Kind == TokenKind.Operator && Peek.Value is "*" or "/" or "//" or "%")
        {
            var t = Next();
            left = new BinaryExpr(t.Value, left, ParsePower(), t.Line);
        }
        return left;
    }

    private Expr ParsePower()
    {
        var left = ParseUnary();
        while (Peek.IsOp("**")) { var t = Next(); left = new BinaryExpr("**", left, ParseUnary(), t.Line); }
        return left;
    }

    private Expr ParseUnary()
    {
        using var _ = Nest();
        if (Peek.Kind == TokenKind.Operator && Peek.Value is "-" or "+")
        {
            var t = Next();
            return new UnaryExpr(t.Value, ParseUnary(), t.Line);
        }
        return ParseFilters(ParsePostfix(ParsePrimary()));
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.String:
                var s = t.Value;
                while (Peek.Kind == TokenKind.String) s += Next().Value; // adjacent literals concatenate
                return new LiteralExpr(s, t.Line);
            case TokenKind.Integer:
                return new LiteralExpr(long.Parse(t.Value, CultureInfo.InvariantCulture), t.Line);
            case TokenKind.Float:
                return new LiteralExpr(double.Parse(t.Value, CultureInfo.InvariantCulture), t.Line);
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new LiteralExpr(true, t.Line),
                    "false" or "False" => new LiteralExpr(false, t.Line),
                    "none" or "None" => new LiteralExpr(null, t.Line),
                    _ => new NameExpr(t.Value, t.Line),
                };
            case TokenKind.Operator when t.Value == "(":
            {
                if (Peek.IsOp(")")) { Next(); return new ListExpr([], t.Line); }
                var inner = ParseExpression();
                if (Peek.IsOp(","))
                {
                    var items = new List<Expr> { inner };
                    while (Peek.IsOp(",")) { Next(); if (Peek.IsOp(")")) break; items.Add(ParseExpression()); }
                    inner = new ListExpr(items, t.Line);
                }
                ExpectOp(")");
                return inner;
            }
            case TokenKind.Operator when t.Value == "[":
            {
                var items = new List<Expr>();
                while (!Peek.IsOp("]"))
                {
                    items.Add(ParseExpression());
                    if (!Peek.IsOp("]")) ExpectOp(",");
                }
                Next();
                return new ListExpr(items, t.Line);
            }
            case TokenKind.Operator when t.Value == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!Peek.IsOp("}"))
                {
                    var key = ParseExpression();
                    ExpectOp(":");
                    items.Add((key, ParseExpression()));
                    if (!Peek.IsOp("}")) ExpectOp(",");
                }
                Next();
                return new DictExpr(items, t.Line);
            }
            default:
                throw Error($"unexpected '{(t.Kind == TokenKind.Eof ? "end of template" : t.Value)}' in an expression", t.Line);
        }
    }

    private Expr ParsePostfix(Expr target)
    {
        while (true)
        {
            var t = Peek;
            if (t.IsOp("."))
            {
                Next();
                var name = Next();
                if (name.Kind is not (TokenKind.Name or TokenKind.Integer)) throw Error("expected a name after '.'", name.Line);
                target = name.Kind == TokenKind.Integer
                    ? new ItemExpr(target, new LiteralExpr(long.Parse(name.Value, CultureInfo.InvariantCulture), name.Line), name.Line)
                    : new AttrExpr(target, name.Value, name.Line);
            }
            else if (t.IsOp("["))
            {
                Next();
                Expr? start = null, stop = null, step = null;
                bool isSlice = false;
                if (!Peek.IsOp(":")) start = ParseExpression();
                if (Peek.IsOp(":"))
                {
                    isSlice = true;
                    Next();
                    if (!Peek.IsOp("]") && !Peek.IsOp(":")) stop = ParseExpression();
                    if (Peek.IsOp(":"))
                    {
                        Next();
                        if (!Peek.IsOp("]")) step = ParseExpression();
                    }
                }
                ExpectOp("]");
                target = isSlice ? new SliceExpr(target, start, stop, step, t.Line) : new ItemExpr(target, start!, t.Line);
            }
            else if (t.IsOp("("))
            {
                var (args, kwargs) = ParseCallArguments();
                target = new CallExpr(target, args, kwargs, t.Line);
            }
            else return target;
        }
    }

    private Expr ParseFilters(Expr value)
    {
        while (true)
        {
            var t = Peek;
            if (t.IsOp("|"))
            {
                Next();
                var name = ExpectName();
                var (args, kwargs) = Peek.IsOp("(") ? ParseCallArguments() : ([], []);
                value = new FilterExpr(value, name, args, kwargs, t.Line);
            }
            else if (t.IsName("is"))
            {
                Next();
                bool negated = false;
                if (Peek.IsName("not")) { Next(); negated = true; }
                var name = Next();
                if (name.Kind != TokenKind.Name) throw Error("expected a test name after 'is'", name.Line);
                IReadOnlyList<Expr> args = [];
                if (Peek.IsOp("(")) args = ParseCallArguments().Args;
                else if (Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                         || (Peek.Kind == TokenKind.Name && Peek.Value is not ("and" or "or" or "else" or "if" or "in" or "is" or "not")))
                    args = [ParsePostfix(ParsePrimary())];
                value = new TestExpr(value, name.Value, args, negated, t.Line);
            }
            else return value;
        }
    }

    private (List<Expr> Args, List<(string, Expr)> Kwargs) ParseCallArguments()
    {
        ExpectOp("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!Peek.IsOp(")"))
        {
            if (Peek.Kind == TokenKind.Name && PeekAt(1).IsOp("="))
            {
                var name = Next().Value;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else args.Add(ParseExpression());
            if (!Peek.IsOp(")")) ExpectOp(",");
        }
        Next();
        return (args, kwargs);
    }

    private string ExpectName()
    {
        var t = Next();
        return t.Kind == TokenKind.Name ? t.Value : throw Error($"expected a name, found '{t.Value}'", t.Line);
    }

    private void ExpectOp(string op)
    {
        var t = Next();
        if (!t.IsOp(op)) throw Error($"expected '{op}', found '{(t.Kind == TokenKind.Eof ? "end of template" : t.Value)}'", t.Line);
    }

    private void Expect(TokenKind kind, string what)
    {
        var t = Next();
        if (t.Kind != kind) throw Error($"expected {what}, found '{(t.Kind == TokenKind.Eof ? "end of template" : t.Value)}'", t.Line);
    }

    private ChatTemplateException Error(string message, int? line = null) =>
        new($"chat template line {line ?? Peek.Line}: {message}");
}
