using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace ActorQuery.Tokenization.Jinja;

/// <summary>Jinja's undefined: renders as "", is false, and chains (an attribute of it is undefined too).</summary>
internal sealed class Undefined
{
    public static readonly Undefined Instance = new();
    private Undefined() { }
    public override string ToString() => "";
}

/// <summary>A callable value: a builtin function, a bound string method, a macro.</summary>
internal delegate object? JinjaFunction(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs);

/// <summary>The object <c>namespace(...)</c> makes, whose attributes <c>{% set ns.x = ... %}</c> may change from any scope.</summary>
internal sealed class JinjaNamespace : Dictionary<string, object?>
{
    public JinjaNamespace() : base(StringComparer.Ordinal) { }
}

/// <summary>
/// Python-like value semantics for the renderer. Values are null (None), bool, long, double, string,
/// List&lt;object?&gt;, Dictionary&lt;string, object?&gt; (insertion-ordered like a Python dict), Undefined and JinjaFunction.
/// </summary>
internal static class JinjaValues
{
    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    /// <summary>str(value) as Python prints it.</summary>
    public static string ToStr(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatFloat(d),
        _ => Repr(v),
    };

    /// <summary>repr(value), as Python shows a value inside a list or dict.</summary>
    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        WriteRepr(sb, v);
        return sb.ToString();
    }

    // Written into one builder with checks, because a template can build values whose text is unbounded: a namespace
    // that holds itself, or a list of a million references to one long string.
    private static void WriteRepr(StringBuilder sb, object? v)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (v)
        {
            case string s:
                sb.Append('\'').Append(s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n")).Append('\'');
                break;
            case List<object?> list:
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    WriteRepr(sb, list[i]);
                    CheckLength(sb);
                }
                sb.Append(']');
                break;
            case Dictionary<string, object?> dict:
                sb.Append('{');
                bool first = true;
                foreach (var (key, value) in dict)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    WriteRepr(sb, key);
                    sb.Append(": ");
                    WriteRepr(sb, value);
                    CheckLength(sb);
                }
                sb.Append('}');
                break;
            case JinjaFunction:
                sb.Append("<function>");
                break;
            default:
                sb.Append(ToStr(v));
                break;
        }
    }

    /// <summary>Stops text built piece by piece at <see cref="JinjaLimits.MaxOutputChars"/>, before it fills memory.</summary>
    public static void CheckLength(StringBuilder sb)
    {
        if (sb.Length > JinjaLimits.MaxOutputChars)
            throw JinjaTemplate.LimitExceeded($"a string longer than {JinjaLimits.MaxOutputChars:N0} characters");
    }

    private static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        var s = d.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') ? s : s + ".0";
    }

    public static bool AreEqual(object? a, object? b)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack(); // a namespace can hold itself
        return AreEqualCore(a, b);
    }

    private static bool AreEqualCore(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (Undefined, Undefined) => true,
        (long x, long y) => x == y,
        (long x, double y) => x == y,
        (double x, long y) => x == y,
        (double x, double y) => x == y,
        (bool x, bool y) => x == y,
        (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
        (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => AreEqual(p.First, p.Second)),
        (Dictionary<string, object?> x, Dictionary<string, object?> y) =>
            x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out var o) && AreEqual(kv.Value, o)),
        _ => ReferenceEquals(a, b),
    };

    public static int Compare(object? a, object? b) => (a, b) switch
    {
        (string x, string y) => string.CompareOrdinal(x, y),
        _ when IsNumber(a) && IsNumber(b) => ToDouble(a).CompareTo(ToDouble(b)),
        _ => throw new ChatTemplateException($"cannot compare {TypeName(a)} with {TypeName(b)}"),
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new ChatTemplateException($"expected a number, got {TypeName(v)}"),
    };

    public static long ToLong(object? v) => v switch
    {
        long l => l,
        double d => (long)d,
        bool b => b ? 1 : 0,
        _ => throw new ChatTemplateException($"expected an integer, got {TypeName(v)}"),
    };

    public static string TypeName(object? v) => v switch
    {
        null => "none",
        Undefined => "undefined",
        bool => "boolean",
        long => "integer",
        double => "float",
        string => "string",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        JinjaFunction => "function",
        _ => v.GetType().Name,
    };

    /// <summary>The items a for loop or filter walks: list items, dict keys, string characters.</summary>
    public static List<object?> Iterate(object? v) => v switch
    {
        Undefined => [],
        List<object?> list => list,
        Dictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
        string s => TextElements(s),
        _ => throw new ChatTemplateException($"{TypeName(v)} is not iterable"),
    };

    private static List<object?> TextElements(string s)
    {
        var list = new List<object?>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length) { list.Add(s.Substring(i, 2)); i++; }
            else list.Add(s[i].ToString());
        }
        return list;
    }

    /// <summary>A JSON value as the template sees it, as Python's json.loads makes it: objects keep their key order,
    /// integers stay integers.</summary>
    public static object? FromJson(System.Text.Json.JsonElement e) => e.ValueKind switch
    {
        System.Text.Json.JsonValueKind.Object => e.EnumerateObject().Aggregate(new Dictionary<string, object?>(StringComparer.Ordinal),
            (d, p) => { d[p.Name] = FromJson(p.Value); return d; }),
        System.Text.Json.JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        System.Text.Json.JsonValueKind.String => e.GetString(),
        System.Text.Json.JsonValueKind.Number => e.TryGetInt64(out long l) ? (object)l : e.GetDouble(),
        System.Text.Json.JsonValueKind.True => true,
        System.Text.Json.JsonValueKind.False => false,
        _ => null,
    };

    /// <summary>json.dumps(value, ensure_ascii=False, indent=indent) with Python's separators, as transformers' tojson.</summary>
    public static string ToJson(object? v, int? indent, bool sortKeys = false)
    {
        if (indent > 1024) throw JinjaTemplate.LimitExceeded($"tojson indent {indent} is over 1024");
        var sb = new StringBuilder();
        WriteJson(sb, v, indent, 0, sortKeys);
        return sb.ToString();
    }

    private static void WriteJson(StringBuilder sb, object? v, int? indent, int depth, bool sortKeys)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack(); // a namespace can hold itself
        CheckLength(sb);
        switch (v)
        {
            case null or Undefined: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long or double: sb.Append(ToStr(v)); break;
            case string s: WriteJsonString(sb, s); break;
            case List<object?> list:
                WriteContainer(sb, '[', ']', list.Count, indent, depth, i => WriteJson(sb, list[i], indent, depth + 1, sortKeys));
                break;
            case Dictionary<string, object?> dict:
                var entries = sortKeys ? dict.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList() : dict.ToList();
                WriteContainer(sb, '{', '}', entries.Count, indent, depth, i =>
                {
                    WriteJsonString(sb, entries[i].Key);
                    sb.Append(": ");
                    WriteJson(sb, entries[i].Value, indent, depth + 1, sortKeys);
                });
                break;
            default: throw new ChatTemplateException($"cannot convert {TypeName(v)} to JSON");
        }
    }

    private static void WriteContainer(StringBuilder sb, char open, char close, int count, int? indent, int depth, Action<int> item)
    {
        sb.Append(open);
        if (count == 0) { sb.Append(close); return; }
        for (int i = 0; i < count; i++)
        {
            if (i > 0) sb.Append(indent is null ? ", " : ",");
            if (indent is { } n) sb.Append('\n').Append(' ', n * (depth + 1));
            item(i);
        }
        if (indent is { } m) sb.Append('\n').Append(' ', m * depth);
        sb.Append(close);
    }

    private static void WriteJsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
