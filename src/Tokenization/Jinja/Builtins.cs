using System.Globalization;
using System.Text;
using static ActorQuery.Tokenization.Jinja.JinjaValues;

namespace ActorQuery.Tokenization.Jinja;

/// <summary>The functions, filters, tests, operators and string/dict methods chat templates call.</summary>
internal static class Builtins
{
    public static readonly IReadOnlyDictionary<string, JinjaFunction> Functions = new Dictionary<string, JinjaFunction>
    {
        ["namespace"] = (args, kwargs) =>
        {
            var ns = new JinjaNamespace();
            foreach (var a in args) if (a is Dictionary<string, object?> d) foreach (var kv in d) ns[kv.Key] = kv.Value;
            foreach (var kv in kwargs) ns[kv.Key] = kv.Value;
            return ns;
        },
        ["dict"] = (args, kwargs) => new Dictionary<string, object?>(kwargs, StringComparer.Ordinal),
        ["range"] = (args, _) =>
        {
            long start = 0, stop, step = 1;
            if (args.Count == 1) stop = ToLong(args[0]);
            else if (args.Count >= 2) { start = ToLong(args[0]); stop = ToLong(args[1]); if (args.Count > 2) step = ToLong(args[2]); }
            else throw new ChatTemplateException("range() needs an argument");
            if (step == 0) throw new ChatTemplateException("range() step must not be zero");
            // Count before building: range(10**9) must fail here, not after allocating a billion items.
            var count = step > 0 ? (stop > start ? ((decimal)stop - start + step - 1) / step : 0)
                : (start > stop ? ((decimal)start - stop - step - 1) / -step : 0);
            if (decimal.Truncate(count) > JinjaLimits.MaxLoopIterations)
                throw JinjaTemplate.LimitExceeded($"range() of more than {JinjaLimits.MaxLoopIterations:N0} items");
            var list = new List<object?>();
            for (long i = start; step > 0 ? i < stop : i > stop; i += step) list.Add(i);
            return list;
        },
        // transformers' raise_exception: the template rejects the conversation with its own message.
        ["raise_exception"] = (args, _) =>
            throw new ChatTemplateException($"the chat template rejected the messages: {(args.Count > 0 ? ToStr(args[0]) : "")}"),
        ["strftime_now"] = (args, _) => StrFTime(DateTime.Now, args.Count > 0 ? ToStr(args[0]) : "%Y-%m-%d"),
    };

    public static object? GetAttribute(object? target, string name)
    {
        switch (target)
        {
            case string s:
                return StringMethod(s, name);
            case JinjaNamespace ns:
                return ns.TryGetValue(name, out var nv) ? nv : Undefined.Instance;
            case Dictionary<string, object?> d:
                // Jinja tries the Python attribute first (dict methods), then the key.
                return (object?)DictMethod(d, name) ?? (d.TryGetValue(name, out var v) ? v : Undefined.Instance);
            default:
                return Undefined.Instance;
        }
    }

    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case Dictionary<string, object?> d:
                var k = key as string ?? ToStr(key);
                return d.TryGetValue(k, out var v) ? v : (object?)DictMethod(d, k) ?? Undefined.Instance;
            case List<object?> list when key is long or bool:
            {
                long i = ToLong(key);
                if (i < 0) i += list.Count;
                return i >= 0 && i < list.Count ? list[(int)i] : Undefined.Instance;
            }
            case string s when key is long:
            {
                var chars = Iterate(s);
                long i = (long)key;
                if (i < 0) i += chars.Count;
                return i >= 0 && i < chars.Count ? chars[(int)i] : Undefined.Instance;
            }
            case string s when key is string name:
                return StringMethod(s, name);
            default:
                return Undefined.Instance;
        }
    }

    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        var items = target switch
        {
            List<object?> list => list,
            string s => Iterate(s),
            Undefined => [],
            _ => throw new ChatTemplateException($"cannot slice {TypeName(target)}"),
        };
        long n = items.Count;
        long st = step is null ? 1 : ToLong(step);
        if (st == 0) throw new ChatTemplateException("slice step must not be zero");
        long Clamp(object? v, long dflt, long lo, long hi)
        {
            if (v is null) return dflt;
            long x = ToLong(v);
            if (x < 0) x += n;
            return Math.Clamp(x, lo, hi);
        }
        var result = new List<object?>();
        if (st > 0)
        {
            long a = Clamp(start, 0, 0, n), b = Clamp(stop, n, 0, n);
            for (long i = a; i < b; i += st) result.Add(items[(int)i]);
        }
        else
        {
            long a = Clamp(start, n - 1, -1, n - 1), b = Clamp(stop, -1, -1, n - 1);
            for (long i = a; i > b; i += st) result.Add(items[(int)i]);
        }
        return target is string ? string.Concat(result.Select(x => (string)x!)) : result;
    }

    public static object? Binary(string op, object? a, object? b)
    {
        switch (op)
        {
            case "~": return ToStr(a) + ToStr(b);
            case "==": return AreEqual(a, b);
            case "!=": return !AreEqual(a, b);
            case "<": return Compare(a, b) < 0;
            case ">": return Compare(a, b) > 0;
            case "<=": return Compare(a, b) <= 0;
            case ">=": return Compare(a, b) >= 0;
            case "in": return Contains(b, a);
            case "not in": return !Contains(b, a);
            case "+":
                if (a is string sa && b is string sb) return sa + sb;
                if (a is List<object?> la && b is List<object?> lb) return la.Concat(lb).ToList();
                break;
            case "*":
                // Sized before building: 'x' * 10**9 must fail here, not after allocating it.
                if (a is string rs && b is long rn)
                    return (decimal)rs.Length * Math.Max(0, rn) > JinjaLimits.MaxOutputChars
                        ? throw JinjaTemplate.LimitExceeded($"a string longer than {JinjaLimits.MaxOutputChars:N0} characters")
                        : string.Concat(Enumerable.Repeat(rs, (int)Math.Max(0, rn)));
                if (a is List<object?> rl && b is long rm)
                    return (decimal)rl.Count * Math.Max(0, rm) > JinjaLimits.MaxLoopIterations
                        ? throw JinjaTemplate.LimitExceeded($"a list longer than {JinjaLimits.MaxLoopIterations:N0} items")
                        : Enumerable.Repeat(rl, (int)Math.Max(0, rm)).SelectMany(x => x).ToList();
                break;
        }
        if (!IsNumber(a) || !IsNumber(b))
            throw new ChatTemplateException($"unsupported operand types for {op}: {TypeName(a)} and {TypeName(b)}");
        bool ints = a is long or bool && b is long or bool;
        // Each arm is boxed on its own: a long:double conditional would turn integer results into floats.
        return op switch
        {
            "+" => ints ? (object)(ToLong(a) + ToLong(b)) : ToDouble(a) + ToDouble(b),
            "-" => ints ? (object)(ToLong(a) - ToLong(b)) : ToDouble(a) - ToDouble(b),
            "*" => ints ? (object)(ToLong(a) * ToLong(b)) : ToDouble(a) * ToDouble(b),
            "/" => ToDouble(b) == 0 ? throw new ChatTemplateException("division by zero") : ToDouble(a) / ToDouble(b),
            "//" => ToDouble(b) == 0 ? throw new ChatTemplateException("division by zero")
                : ints ? (object)(long)Math.Floor((double)ToLong(a) / ToLong(b)) : Math.Floor(ToDouble(a) / ToDouble(b)),
            "%" => ToDouble(b) == 0 ? throw new ChatTemplateException("modulo by zero")
                : ints ? (object)(((ToLong(a) % ToLong(b)) + ToLong(b)) % ToLong(b)) : ToDouble(a) - ToDouble(b) * Math.Floor(ToDouble(a) / ToDouble(b)),
            "**" => ints && ToLong(b) >= 0 ? (object)(long)Math.Pow(ToLong(a), ToLong(b)) : Math.Pow(ToDouble(a), ToDouble(b)),
            _ => throw new ChatTemplateException($"unknown operator {op}"),
        };
    }

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new ChatTemplateException($"'in <string>' needs a string, not {TypeName(item)}"),
        List<object?> list => list.Any(x => AreEqual(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        Undefined or null => false,
        _ => throw new ChatTemplateException($"'in' does not work on {TypeName(container)}"),
    };

    public static bool Test(string name, object? v, IReadOnlyList<object?> args)
    {
        object? Arg() => args.Count > 0 ? args[0] : throw new ChatTemplateException($"test '{name}' needs an argument");
        return name switch
        {
            "defined" => v is not Undefined,
            "undefined" => v is Undefined,
            "none" => v is null,
            "string" => v is string,
            "number" => v is long or double,
            "integer" => v is long,
            "float" => v is double,
            "boolean" => v is bool,
            "true" => v is true,
            "false" => v is false,
            "mapping" => v is Dictionary<string, object?>,
            "sequence" => v is List<object?> or string,
            "iterable" => v is List<object?> or string or Dictionary<string, object?>,
            "callable" => v is JinjaFunction,
            "even" => ToLong(v) % 2 == 0,
            "odd" => ToLong(v) % 2 != 0,
            "divisibleby" => ToLong(v) % ToLong(Arg()) == 0,
            "eq" or "equalto" or "==" => AreEqual(v, Arg()),
            "ne" or "!=" => !AreEqual(v, Arg()),
            "lt" or "lessthan" or "<" => Compare(v, Arg()) < 0,
            "gt" or "greaterthan" or ">" => Compare(v, Arg()) > 0,
            "le" or "<=" => Compare(v, Arg()) <= 0,
            "ge" or ">=" => Compare(v, Arg()) >= 0,
            "in" => Contains(Arg(), v),
            "sameas" => ReferenceEquals(v, Arg()) || (v is null && Arg() is null) || (v is bool x && Arg() is bool y && x == y),
            "lower" => v is string ls && ls == ls.ToLowerInvariant(),
            "upper" => v is string us && us == us.ToUpperInvariant(),
            _ => throw new ChatTemplateException($"unknown test '{name}'"),
        };
    }

    public static object? Filter(string name, object? v, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
    {
        object? Arg(int i, string kw, object? dflt) => i < args.Count ? args[i] : kwargs.TryGetValue(kw, out var x) ? x : dflt;
        switch (name)
        {
            case "length" or "count":
                return v switch
                {
                    string s => (long)Iterate(s).Count,
                    System.Collections.ICollection c => (long)c.Count,
                    Undefined => 0L,
                    _ => throw new ChatTemplateException($"{TypeName(v)} has no length"),
                };
            case "string": return ToStr(v);
            case "int": return v is string si ? (long.TryParse(si.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var pl) ? pl : 0L) : IsNumber(v) ? ToLong(v) : 0L;
            case "float": return v is string sf ? (double.TryParse(sf.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var pd) ? pd : 0.0) : IsNumber(v) ? ToDouble(v) : 0.0;
            case "abs": return v is long al ? (object)Math.Abs(al) : Math.Abs(ToDouble(v));
            case "trim": return PyStrip(ToStr(v), Arg(0, "chars", null) as string, left: true, right: true);
            case "upper": return ToStr(v).ToUpperInvariant();
            case "lower": return ToStr(v).ToLowerInvariant();
            case "capitalize": return Capitalize(ToStr(v));
            case "title": return Title(ToStr(v));
            case "safe": return v;
            case "replace":
            {
                var s = ToStr(v);
                var from = ToStr(Arg(0, "old", ""));
                var to = ToStr(Arg(1, "new", ""));
                return Replace(s, from, to);
            }
            case "first": return Iterate(v) is { Count: > 0 } f ? f[0] : Undefined.Instance;
            case "last": return Iterate(v) is { Count: > 0 } l ? l[^1] : Undefined.Instance;
            case "list": return Iterate(v).ToList();
            case "reverse": return v is string rs ? string.Concat(Iterate(rs).Select(x => (string)x!).Reverse()) : Enumerable.Reverse(Iterate(v)).ToList();
            case "join":
            {
                var attribute = Arg(1, "attribute", null) as string;
                var items = Iterate(v);
                return Join(ToStr(Arg(0, "d", "")), attribute is null ? items : items.Select(x => GetItem(x, attribute)).ToList());
            }
            case "default" or "d":
                return v is Undefined || (Truthy(Arg(1, "boolean", false)) && !Truthy(v)) ? Arg(0, "default_value", "") : v;
            case "items":
                return v is Dictionary<string, object?> d ? d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()
                    : v is Undefined ? new List<object?>() : throw new ChatTemplateException($"items needs a dict, not {TypeName(v)}");
            case "tojson":
            {
                var indent = Arg(0, "indent", null);
                return ToJson(v, indent is null ? null : (int)ToLong(indent), Truthy(Arg(1, "sort_keys", false)));
            }
            case "indent":
            {
                var width = Arg(0, "width", 4L);
                if (width is not string && ToLong(width) > JinjaLimits.MaxOutputChars)
                    throw JinjaTemplate.LimitExceeded($"indent wider than {JinjaLimits.MaxOutputChars:N0} characters");
                var pad = width is string ps ? ps : new string(' ', (int)Math.Max(0, ToLong(width)));
                bool first = Truthy(Arg(1, "first", false)), blank = Truthy(Arg(2, "blank", false));
                var lines = ToStr(v).Split('\n');
                var sb = new StringBuilder();
                for (int i = 0; i < lines.Length; i++)
                {
                    if (i > 0) sb.Append('\n');
                    if ((i > 0 || first) && (blank || lines[i].Length > 0)) sb.Append(pad);
                    sb.Append(lines[i]);
                    CheckLength(sb);
                }
                return sb.ToString();
            }
            case "unique":
            {
                var result = new List<object?>();
                // Quadratic: a million distinct items is 10^12 comparisons, so this one call watches the render's clock.
                var budget = RenderBudget.Current;
                foreach (var x in Iterate(v))
                {
                    budget?.CheckClock();
                    if (!result.Any(y => AreEqual(x, y))) result.Add(x);
                }
                return result;
            }
            case "map":
            {
                if (kwargs.TryGetValue("attribute", out var attrValue) && attrValue is string attr) return Iterate(v).Select(x => GetItem(x, attr)).ToList();
                var filter = args.Count > 0 ? ToStr(args[0]) : throw new ChatTemplateException("map needs a filter name or attribute=");
                return Iterate(v).Select(x => Filter(filter, x, args.Skip(1).ToList(), new Dictionary<string, object?>())).ToList();
            }
            case "selectattr" or "rejectattr":
            {
                if (args.Count == 0) throw new ChatTemplateException($"{name} needs an attribute name");
                var attr = ToStr(args[0]);
                var testName = args.Count > 1 ? ToStr(args[1]) : null;
                var testArgs = args.Skip(2).ToList();
                bool keep = name == "selectattr";
                return Iterate(v).Where(x =>
                {
                    var value = GetItem(x, attr);
                    return (testName is null ? Truthy(value) : Test(testName, value, testArgs)) == keep;
                }).ToList();
            }
            case "select" or "reject":
            {
                var testName = args.Count > 0 ? ToStr(args[0]) : null;
                var testArgs = args.Skip(1).ToList();
                bool keep = name == "select";
                return Iterate(v).Where(x => (testName is null ? Truthy(x) : Test(testName, x, testArgs)) == keep).ToList();
            }
            default:
                throw new ChatTemplateException($"unknown filter '{name}'");
        }
    }

    private static JinjaFunction? DictMethod(Dictionary<string, object?> d, string name) => name switch
    {
        "items" => (_, _) => d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList(),
        "keys" => (_, _) => d.Keys.Cast<object?>().ToList(),
        "values" => (_, _) => d.Values.ToList(),
        "get" => (args, _) => args.Count > 0 && d.TryGetValue(ToStr(args[0]), out var v) ? v : args.Count > 1 ? args[1] : null,
        _ => null,
    };

    private static object StringMethod(string s, string name) => name switch
    {
        "startswith" => (JinjaFunction)((args, _) => AnyPrefix(args, p => s.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => (JinjaFunction)((args, _) => AnyPrefix(args, p => s.EndsWith(p, StringComparison.Ordinal))),
        "strip" => (JinjaFunction)((args, _) => PyStrip(s, args.Count > 0 ? args[0] as string : null, true, true)),
        "lstrip" => (JinjaFunction)((args, _) => PyStrip(s, args.Count > 0 ? args[0] as string : null, true, false)),
        "rstrip" => (JinjaFunction)((args, _) => PyStrip(s, args.Count > 0 ? args[0] as string : null, false, true)),
        "split" => (JinjaFunction)((args, kw) => PySplit(s, args.Count > 0 ? args[0] as string : kw.GetValueOrDefault("sep") as string,
            args.Count > 1 ? ToLong(args[1]) : kw.TryGetValue("maxsplit", out var m) ? ToLong(m) : -1)),
        "splitlines" => (JinjaFunction)((_, _) => s.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n').Cast<object?>().ToList()),
        "upper" => (JinjaFunction)((_, _) => s.ToUpperInvariant()),
        "lower" => (JinjaFunction)((_, _) => s.ToLowerInvariant()),
        "title" => (JinjaFunction)((_, _) => Title(s)),
        "capitalize" => (JinjaFunction)((_, _) => Capitalize(s)),
        "replace" => (JinjaFunction)((args, _) => args.Count >= 2 && ToStr(args[0]).Length > 0
            ? Replace(s, ToStr(args[0]), ToStr(args[1])) : s),
        "find" => (JinjaFunction)((args, _) => (long)s.IndexOf(ToStr(args.Count > 0 ? args[0] : ""), StringComparison.Ordinal)),
        "count" => (JinjaFunction)((args, _) => CountOf(s, ToStr(args.Count > 0 ? args[0] : ""))),
        "join" => (JinjaFunction)((args, _) => Join(s, Iterate(args.Count > 0 ? args[0] : null))),
        "isdigit" => (JinjaFunction)((_, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isspace" => (JinjaFunction)((_, _) => s.Length > 0 && s.All(char.IsWhiteSpace)),
        _ => Undefined.Instance,
    };

    /// <summary>The join filter and str.join, built with checks: a million references to one long string must stop at the
    /// bound, not fill memory.</summary>
    private static string Join(string separator, IReadOnlyList<object?> items)
    {
        var joined = new StringBuilder();
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0) joined.Append(separator);
            joined.Append(ToStr(items[i]));
            CheckLength(joined);
        }
        return joined.ToString();
    }

    /// <summary>str.replace, sized before building: 'a' * 10**6 with each 'a' replaced by a long string must not fill memory.</summary>
    private static string Replace(string s, string from, string to)
    {
        if (from.Length == 0) return s;
        if (to.Length > from.Length && s.Length + (decimal)CountOf(s, from) * (to.Length - from.Length) > JinjaLimits.MaxOutputChars)
            throw JinjaTemplate.LimitExceeded($"a string longer than {JinjaLimits.MaxOutputChars:N0} characters");
        return s.Replace(from, to, StringComparison.Ordinal);
    }

    private static bool AnyPrefix(IReadOnlyList<object?> args, Func<string, bool> check) =>
        args.Count > 0 && (args[0] is List<object?> options ? options.Any(o => check(ToStr(o))) : check(ToStr(args[0])));

    private static long CountOf(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        long n = 0;
        for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    /// <summary>Python's str.strip/lstrip/rstrip: whitespace, or any of the given characters.</summary>
    private static string PyStrip(string s, string? chars, bool left, bool right)
    {
        int a = 0, b = s.Length;
        bool Strip(char c) => chars is null ? char.IsWhiteSpace(c) : chars.Contains(c);
        if (left) while (a < b && Strip(s[a])) a++;
        if (right) while (b > a && Strip(s[b - 1])) b--;
        return s[a..b];
    }

    /// <summary>Python's str.split: on runs of whitespace (dropping empties) without a separator, else exactly.</summary>
    private static List<object?> PySplit(string s, string? sep, long maxSplit)
    {
        if (sep is not null)
        {
            if (sep.Length == 0) throw new ChatTemplateException("split() separator is empty");
            var parts = maxSplit < 0 ? s.Split(sep) : s.Split(sep, (int)Math.Min(int.MaxValue, maxSplit + 1));
            return parts.Cast<object?>().ToList();
        }
        var result = new List<object?>();
        int i = 0;
        while (i < s.Length)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            if (i >= s.Length) break;
            if (maxSplit >= 0 && result.Count == maxSplit) { result.Add(s[i..].TrimEnd()); break; }
            int start = i;
            while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
            result.Add(s[start..i]);
        }
        return result;
    }

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool startOfWord = true;
        foreach (char c in s)
        {
            sb.Append(startOfWord ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            startOfWord = !char.IsLetterOrDigit(c);
        }
        return sb.ToString();
    }

    /// <summary>The strftime codes that chat templates use for "today's date" (Llama 3.1+).</summary>
    private static string StrFTime(DateTime t, string format)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { sb.Append(format[i]); continue; }
            char c = format[++i];
            sb.Append(c switch
            {
                'd' => t.ToString("dd", inv),
                'm' => t.ToString("MM", inv),
                'Y' => t.ToString("yyyy", inv),
                'y' => t.ToString("yy", inv),
                'b' => t.ToString("MMM", inv),
                'B' => t.ToString("MMMM", inv),
                'a' => t.ToString("ddd", inv),
                'A' => t.ToString("dddd", inv),
                'H' => t.ToString("HH", inv),
                'I' => t.ToString("hh", inv),
                'M' => t.ToString("mm", inv),
                'S' => t.ToString("ss", inv),
                'p' => t.ToString("tt", inv),
                'j' => t.DayOfYear.ToString("000", inv),
                '%' => "%",
                _ => "%" + c,
            });
        }
        return sb.ToString();
    }
}
