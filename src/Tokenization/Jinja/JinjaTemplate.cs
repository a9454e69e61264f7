using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace ActorQuery.Tokenization.Jinja;

/// <summary>
/// A parsed Jinja template that renders with Python/Jinja semantics, for the subset chat templates use.
/// Written by hand because no Jinja engine is packaged for .NET on our feed (Fluid and Scriban speak Liquid, whose
/// syntax and whitespace rules differ). Errors are <see cref="ChatTemplateException"/>s that name the line.
/// Rendering stays within <see cref="JinjaLimits"/>.
/// </summary>
internal sealed class JinjaTemplate
{
    private readonly IReadOnlyList<Node> _body;

    public JinjaTemplate(string source) => _body = JinjaParser.Parse(source);

    public string Render(IReadOnlyDictionary<string, object?> variables) => Render(variables, JinjaLimits.RenderTimeBudget);

    /// <summary>Renders within <paramref name="timeBudget"/> (tests use a longer one to reach the other limits first).</summary>
    internal string Render(IReadOnlyDictionary<string, object?> variables, TimeSpan timeBudget)
    {
        var globals = new Scope(null);
        foreach (var (name, fn) in Builtins.Functions) globals.Set(name, fn);
        foreach (var (name, value) in variables) globals.Set(name, value);
        var sb = new StringBuilder();
        using var budget = RenderBudget.Start(timeBudget);
        try
        {
            new Renderer(globals, RenderBudget.Current!).RenderNodes(_body, globals, sb);
        }
        catch (InsufficientExecutionStackException)
        {
            // Values nested without end (a namespace that holds itself) walked by repr, tojson or ==.
            throw LimitExceeded("a value nested too deeply for the stack");
        }
        catch (OutOfMemoryException)
        {
            // One refused allocation (a value past 2^30 characters): the heap itself is fine, so this render alone fails.
            throw LimitExceeded("a value grew too large to hold in memory");
        }
        return sb.ToString();
    }

    internal static ChatTemplateException LimitExceeded(string what, int? line = null) =>
        new($"chat template{(line is null ? "" : $" line {line}")}: {what}") { IsTemplateFault = true };

    private sealed class Scope(Scope? parent)
    {
        private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);

        public object? Get(string name)
        {
            for (var s = this; s is not null; s = s.Parent)
                if (s._vars.TryGetValue(name, out var v)) return v;
            return Undefined.Instance;
        }

        public void Set(string name, object? value) => _vars[name] = value;

        public Scope? Parent { get; } = parent;
    }

    private sealed class Renderer(Scope globals, RenderBudget budget)
    {
        private int _callDepth;

        public void RenderNodes(IReadOnlyList<Node> nodes, Scope scope, StringBuilder sb)
        {
            EnsureStack();
            foreach (var node in nodes) RenderNode(node, scope, sb);
        }

        /// <summary>The backstop under the named limits: a thread with a small stack fails this render, not the process.</summary>
        private static void EnsureStack()
        {
            if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
                throw LimitExceeded("nested too deeply for the stack");
        }

        private static void CheckOutput(StringBuilder sb)
        {
            if (sb.Length > JinjaLimits.MaxOutputChars)
                throw LimitExceeded($"output longer than {JinjaLimits.MaxOutputChars:N0} characters");
        }

        private void CountIteration() => budget.CountIteration();

        private void RenderNode(Node node, Scope scope, StringBuilder sb)
        {
            switch (node)
            {
                case TextNode t:
                    sb.Append(t.Text);
                    CheckOutput(sb);
                    break;
                case OutputNode o:
                    sb.Append(JinjaValues.ToStr(Eval(o.Value, scope)));
                    CheckOutput(sb);
                    break;
                case IfNode i:
                    foreach (var (condition, body) in i.Branches)
                    {
                        if (JinjaValues.Truthy(Eval(condition, scope)))
                        {
                            RenderNodes(body, scope, sb);
                            return;
                        }
                    }
                    if (i.Else is not null) RenderNodes(i.Else, scope, sb);
                    break;
                case ForNode f:
                    RenderFor(f, scope, sb);
                    break;
                case SetNode s:
                    object? value;
                    if (s.Value is not null) value = Eval(s.Value, scope);
                    else
                    {
                        var inner = new StringBuilder();
                        RenderNodes(s.Body!, scope, inner);
                        value = inner.ToString();
                    }
                    Assign(s, value, scope);
                    break;
                case MacroNode m:
                    scope.Set(m.Name, MakeMacro(m));
                    break;
                case PlainBlockNode p:
                    RenderNodes(p.Body, scope, sb);
                    break;
            }
        }

        private static void Assign(SetNode s, object? value, Scope scope)
        {
            if (s.Attribute is not null)
            {
                if (scope.Get(s.Targets[0]) is not JinjaNamespace ns)
                    throw new ChatTemplateException($"cannot set attribute '{s.Attribute}' on '{s.Targets[0]}', which is not a namespace");
                ns[s.Attribute] = value;
                return;
            }
            if (s.Targets.Count == 1)
            {
                scope.Set(s.Targets[0], value);
                return;
            }
            var items = JinjaValues.Iterate(value);
            if (items.Count != s.Targets.Count)
                throw new ChatTemplateException($"cannot unpack {items.Count} values into {s.Targets.Count} names");
            for (int k = 0; k < items.Count; k++) scope.Set(s.Targets[k], items[k]);
        }

        private void RenderFor(ForNode f, Scope scope, StringBuilder sb)
        {
            var source = Eval(f.Iterable, scope);
            if (source is null) throw new ChatTemplateException("cannot loop over none");
            var items = new List<object?>();
            foreach (var item in JinjaValues.Iterate(source))
            {
                CountIteration();
                if (f.Filter is not null)
                {
                    var probe = new Scope(scope);
                    Bind(f.Targets, item, probe);
                    if (!JinjaValues.Truthy(Eval(f.Filter, probe))) continue;
                }
                items.Add(item);
            }
            if (items.Count == 0)
            {
                if (f.Else is not null) RenderNodes(f.Else, scope, sb);
                return;
            }
            for (int k = 0; k < items.Count; k++)
            {
                // Filtered loops count twice (the filter's pass and the body's): the bound is on work, not on items.
                if (f.Filter is not null) CountIteration();
                // Each pass gets its own scope: a {% set %} in the body does not leak out (Jinja's rule; namespaces do).
                var inner = new Scope(scope);
                Bind(f.Targets, items[k], inner);
                int index = k;
                inner.Set("loop", new Dictionary<string, object?>
                {
                    ["index"] = (long)(k + 1),
                    ["index0"] = (long)k,
                    ["revindex"] = (long)(items.Count - k),
                    ["revindex0"] = (long)(items.Count - k - 1),
                    ["first"] = k == 0,
                    ["last"] = k == items.Count - 1,
                    ["length"] = (long)items.Count,
                    ["previtem"] = k > 0 ? items[k - 1] : Undefined.Instance,
                    ["nextitem"] = k < items.Count - 1 ? items[k + 1] : Undefined.Instance,
                    ["cycle"] = (JinjaFunction)((args, _) => args.Count == 0 ? Undefined.Instance : args[index % args.Count]),
                });
                RenderNodes(f.Body, inner, sb);
            }
        }

        private static void Bind(IReadOnlyList<string> targets, object? item, Scope scope)
        {
            if (targets.Count == 1) { scope.Set(targets[0], item); return; }
            var parts = JinjaValues.Iterate(item);
            if (parts.Count != targets.Count) throw new ChatTemplateException($"cannot unpack {parts.Count} values into {targets.Count} loop variables");
            for (int k = 0; k < parts.Count; k++) scope.Set(targets[k], parts[k]);
        }

        private JinjaFunction MakeMacro(MacroNode m) => (args, kwargs) =>
        {
            if (_callDepth >= JinjaLimits.MaxCallDepth)
                throw LimitExceeded($"macro recursion deeper than {JinjaLimits.MaxCallDepth} (macro '{m.Name}')");
            budget.CheckClock();
            _callDepth++;
            try { return CallMacro(m, args, kwargs); }
            finally { _callDepth--; }
        };

        private string CallMacro(MacroNode m, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
        {
            var scope = new Scope(globals);
            for (int k = 0; k < m.Parameters.Count; k++)
            {
                var (name, dflt) = m.Parameters[k];
                object? value = k < args.Count ? args[k]
                    : kwargs.TryGetValue(name, out var kw) ? kw
                    : dflt is not null ? Eval(dflt, scope) : Undefined.Instance;
                scope.Set(name, value);
            }
            var sb = new StringBuilder();
            RenderNodes(m.Body, scope, sb);
            return sb.ToString();
        }

        public object? Eval(Expr e, Scope scope)
        {
            EnsureStack();
            object? value;
            try
            {
                value = EvalCore(e, scope);
            }
            catch (ChatTemplateException ex) when (!ex.Message.StartsWith("chat template", StringComparison.Ordinal))
            {
                throw new ChatTemplateException($"chat template line {e.Line}: {ex.Message}") { IsTemplateFault = ex.IsTemplateFault };
            }
            // Every string and list a template builds passes here, so doubling one in a loop stops at the bound.
            if (value is string s && s.Length > JinjaLimits.MaxOutputChars)
                throw LimitExceeded($"a string longer than {JinjaLimits.MaxOutputChars:N0} characters", e.Line);
            if (value is List<object?> list && list.Count > JinjaLimits.MaxLoopIterations)
                throw LimitExceeded($"a list longer than {JinjaLimits.MaxLoopIterations:N0} items", e.Line);
            return value;
        }

        private object? EvalCore(Expr e, Scope scope)
        {
            switch (e)
            {
                case LiteralExpr l: return l.Value;
                case NameExpr n: return scope.Get(n.Name);
                case AttrExpr a: return Builtins.GetAttribute(Eval(a.Target, scope), a.Name);
                case ItemExpr i: return Builtins.GetItem(Eval(i.Target, scope), Eval(i.Key, scope));
                case SliceExpr s:
                    return Builtins.Slice(Eval(s.Target, scope), Optional(s.Start, scope), Optional(s.Stop, scope), Optional(s.Step, scope));
                case CallExpr c:
                {
                    var fn = Eval(c.Function, scope);
                    if (fn is not JinjaFunction f) throw new ChatTemplateException($"{Describe(c.Function)} is not callable ({JinjaValues.TypeName(fn)})");
                    return f(c.Args.Select(x => Eval(x, scope)).ToList(), c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope)));
                }
                case FilterExpr f:
                    return Builtins.Filter(f.Name, Eval(f.Value, scope), f.Args.Select(x => Eval(x, scope)).ToList(),
                        f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope)));
                case TestExpr t:
                    var passed = Builtins.Test(t.Name, Eval(t.Value, scope), t.Args.Select(x => Eval(x, scope)).ToList());
                    return t.Negated ? !passed : passed;
                case UnaryExpr u:
                    var operand = Eval(u.Operand, scope);
                    return u.Op switch
                    {
                        "not" => !JinjaValues.Truthy(operand),
                        "-" => operand is long l ? (object)(-l) : -JinjaValues.ToDouble(operand),
                        _ => operand,
                    };
                case BinaryExpr b when b.Op == "and":
                {
                    var left = Eval(b.Left, scope);
                    return JinjaValues.Truthy(left) ? Eval(b.Right, scope) : left;
                }
                case BinaryExpr b when b.Op == "or":
                {
                    var left = Eval(b.Left, scope);
                    return JinjaValues.Truthy(left) ? left : Eval(b.Right, scope);
                }
                case BinaryExpr b:
                    return Builtins.Binary(b.Op, Eval(b.Left, scope), Eval(b.Right, scope));
                case ConditionalExpr c:
                    return JinjaValues.Truthy(Eval(c.Condition, scope)) ? Eval(c.Then, scope)
                        : c.Else is null ? Undefined.Instance : Eval(c.Else, scope);
                case ListExpr l:
                    return l.Items.Select(x => Eval(x, scope)).ToList();
                case DictExpr d:
                {
                    var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                    foreach (var (k, v) in d.Items) dict[JinjaValues.ToStr(Eval(k, scope))] = Eval(v, scope);
                    return dict;
                }
                default:
                    throw new ChatTemplateException($"cannot evaluate {e.GetType().Name}");
            }
        }

        private object? Optional(Expr? e, Scope scope) => e is null ? null : Eval(e, scope);

        private static string Describe(Expr e) => e switch
        {
            NameExpr n => $"'{n.Name}'",
            AttrExpr a => $"'{a.Name}'",
            _ => "expression",
        };
    }
}
