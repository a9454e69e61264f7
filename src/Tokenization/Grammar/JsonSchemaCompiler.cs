using System.Numerics;
using System.Text.Json;

namespace ActorQuery.Tokenization.Grammar;

/// <summary>
/// Compiles a JSON Schema into the byte network whose outputs are exactly JSON texts (in <see cref="JsonGrammar"/>'s
/// bounded form) that validate against it. Objects are written with their properties in schema order: every
/// required property, and optional ones where the model chooses; keys outside <c>properties</c> are never written
/// when <c>properties</c> is given (the output still validates). A keyword the compiler cannot enforce throws a
/// <see cref="GrammarException"/> naming it: it is never ignored. Annotations (title, description, default, …) are.
/// </summary>
internal sealed class JsonSchemaCompiler
{
    private static readonly HashSet<string> Annotations =
    [
        "title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly",
        "writeOnly", "$defs", "definitions",
    ];

    private static readonly HashSet<string> Enforced =
    [
        "type", "properties", "required", "additionalProperties", "enum", "const", "items", "minItems", "maxItems",
        "anyOf", "oneOf", "allOf", "$ref", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum",
    ];

    /// <summary>Largest minLength/maxLength/minItems/maxItems a schema may ask for: each unit is automaton states.</summary>
    public const int MaxRepeat = 4096;

    private readonly ByteNfa _nfa = new();
    private readonly JsonGrammar _json;
    private readonly JsonElement _root;
    private readonly Dictionary<string, int> _rules = new();

    private JsonSchemaCompiler(JsonElement root)
    {
        _json = new JsonGrammar(_nfa);
        _root = root;
    }

    public static ByteNfa Compile(string schemaText) => Compile(schemaText, "", "");

    /// <summary>The whole output is <paramref name="prefix"/>, a JSON value the schema accepts, then <paramref name="suffix"/>.</summary>
    public static ByteNfa Compile(string schemaText, string prefix, string suffix)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(schemaText); }
        catch (JsonException e) { throw new GrammarException($"the schema is not valid JSON: {e.Message}"); }
        using (doc)
        {
            var c = new JsonSchemaCompiler(doc.RootElement.Clone());
            int root = c._nfa.DeclareRule();
            var body = c.Schema(c._root, "");
            c._nfa.DefineRule(root, prefix.Length + suffix.Length == 0 ? body
                : c._nfa.Seq(c._nfa.Literal(prefix), body, c._nfa.Literal(suffix)));
            return c._nfa;
        }
    }

    /// <summary>The whole output is any JSON object.</summary>
    public static ByteNfa AnyObject()
    {
        var nfa = new ByteNfa();
        var json = new JsonGrammar(nfa);
        int root = nfa.DeclareRule();
        nfa.DefineRule(root, json.AnyObject());
        return nfa;
    }

    /// <summary>A call of the rule for the schema at <paramref name="path"/> (compiled once, so that repeated items and
    /// recursive references share it).</summary>
    private Frag Rule(JsonElement schema, string path)
    {
        if (!_rules.TryGetValue(path, out var rule))
        {
            rule = _nfa.DeclareRule();
            _rules[path] = rule;
            _nfa.DefineRule(rule, Schema(schema, path));
        }
        return _nfa.Call(rule);
    }

    private static GrammarException Error(string keyword, string path, string why) =>
        new($"{(path.Length == 0 ? "schema" : path)}: '{keyword}' {why}", keyword, path);

    private Frag Schema(JsonElement s, string path)
    {
        if (s.ValueKind == JsonValueKind.True) return _json.AnyValue();
        if (s.ValueKind == JsonValueKind.False) throw new GrammarException($"{(path.Length == 0 ? "schema" : path)}: the schema false admits no value", null, path);
        if (s.ValueKind != JsonValueKind.Object) throw new GrammarException($"{(path.Length == 0 ? "schema" : path)}: a schema must be an object or a boolean", null, path);

        var keywords = s.EnumerateObject().Select(p => p.Name).ToList();
        foreach (var k in keywords)
            if (!Enforced.Contains(k) && !Annotations.Contains(k))
                throw Error(k, path, "is not supported by constrained decoding, so it cannot be enforced");
        var constraints = keywords.Where(Enforced.Contains).ToList();

        if (s.TryGetProperty("$ref", out var reference))
        {
            if (constraints.Count > 1)
                throw Error(constraints.First(k => k != "$ref"), path, "beside '$ref' is not supported");
            var (target, targetPath) = Resolve(reference, path);
            return Rule(target, targetPath);
        }
        if (s.TryGetProperty("const", out var constant)) return Literal(constant);
        if (s.TryGetProperty("enum", out var en))
        {
            if (en.ValueKind != JsonValueKind.Array || en.GetArrayLength() == 0)
                throw Error("enum", path, "must be a non-empty array");
            return _nfa.Alt(en.EnumerateArray().Select(Literal).ToList());
        }
        foreach (var combinator in (ReadOnlySpan<string>)["anyOf", "oneOf", "allOf"])
        {
            if (!s.TryGetProperty(combinator, out var list)) continue;
            if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
                throw Error(combinator, path, "must be a non-empty array");
            if (constraints.Count > 1)
                throw Error(constraints.First(k => k != combinator), path, $"beside '{combinator}' is not supported (move it into each alternative)");
            if (combinator == "allOf")
            {
                if (list.GetArrayLength() != 1) throw Error("allOf", path, "with more than one schema is not supported");
                return Schema(list[0], $"{path}/allOf/0");
            }
            // oneOf is compiled as anyOf: the output matches at least one alternative; exactly one holds whenever the
            // alternatives do not overlap (different types, or objects with different required keys or consts).
            return _nfa.Alt(list.EnumerateArray().Select((x, i) => Schema(x, $"{path}/{combinator}/{i}")).ToList());
        }

        var types = Types(s, path);
        if (types.Count == 0) return _json.AnyValue();
        return _nfa.Alt(types.Select(t => Typed(s, t, path)).ToList());
    }

    private List<string> Types(JsonElement s, string path)
    {
        if (s.TryGetProperty("type", out var type))
        {
            var list = type.ValueKind switch
            {
                JsonValueKind.String => [type.GetString()!],
                JsonValueKind.Array when type.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String)
                    => type.EnumerateArray().Select(x => x.GetString()!).Distinct().ToList(),
                _ => throw Error("type", path, "must be a string or an array of strings"),
            };
            foreach (var t in list)
                if (t is not ("object" or "array" or "string" or "integer" or "number" or "boolean" or "null"))
                    throw Error("type", path, $"'{t}' is not a JSON Schema type");
            // An integer is a number: "number" alone covers both.
            if (list.Contains("number")) list.Remove("integer");
            return list;
        }
        // No type: the keywords present say which kind of value they constrain.
        var inferred = new List<string>();
        if (Has(s, "properties", "required", "additionalProperties")) inferred.Add("object");
        if (Has(s, "items", "minItems", "maxItems")) inferred.Add("array");
        if (Has(s, "minLength", "maxLength")) inferred.Add("string");
        if (Has(s, "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")) inferred.Add("number");
        if (inferred.Count > 1)
            throw Error("type", path, $"is missing and the keywords constrain {string.Join(" and ", inferred)} values; give 'type'");
        return inferred;
    }

    private static bool Has(JsonElement s, params string[] names) => names.Any(n => s.TryGetProperty(n, out _));

    private Frag Typed(JsonElement s, string type, string path) => type switch
    {
        "object" => Object(s, path),
        "array" => Array(s, path),
        "string" => _json.String(Count(s, "minLength", path) ?? 0, Count(s, "maxLength", path)),
        "integer" => IntegerRange(s, path, integerOnly: true),
        "number" => Has(s, "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") ? IntegerRange(s, path, integerOnly: false) : _json.Number(),
        "boolean" => _nfa.Alt(_json.Lit("true"), _json.Lit("false")),
        _ => _json.Lit("null"),
    };

    private Frag Object(JsonElement s, string path)
    {
        var required = new List<string>();
        if (s.TryGetProperty("required", out var req))
        {
            if (req.ValueKind != JsonValueKind.Array || req.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
                throw Error("required", path, "must be an array of strings");
            required = req.EnumerateArray().Select(x => x.GetString()!).Distinct().ToList();
        }
        var props = new List<(string Name, Func<Frag> Value, bool Required)>();
        if (s.TryGetProperty("properties", out var properties))
        {
            if (properties.ValueKind != JsonValueKind.Object) throw Error("properties", path, "must be an object");
            foreach (var p in properties.EnumerateObject())
            {
                var schema = p.Value;
                var at = $"{path}/properties/{Escape(p.Name)}";
                props.Add((p.Name, () => Rule(schema, at), required.Contains(p.Name)));
            }
        }
        // Required keys that 'properties' does not describe take any value.
        foreach (var r in required)
            if (!props.Any(p => p.Name == r)) props.Add((r, _json.AnyValue, true));

        JsonElement? additional = s.TryGetProperty("additionalProperties", out var ap) ? ap : null;
        if (additional is { ValueKind: not (JsonValueKind.True or JsonValueKind.False or JsonValueKind.Object) })
            throw Error("additionalProperties", path, "must be a boolean or a schema");
        if (props.Count == 0)
        {
            if (additional is { ValueKind: JsonValueKind.False }) return _json.Lit("{}");
            if (additional is { ValueKind: JsonValueKind.Object } valueSchema)
                return _json.AnyObject(() => Rule(valueSchema, $"{path}/additionalProperties"));
            return _json.AnyObject();
        }

        // Two lanes of nodes between the properties: nothing written yet (no comma before the next) or something.
        int n = props.Count;
        var empty = new int[n + 1];
        var some = new int[n + 1];
        for (int i = 0; i <= n; i++) { empty[i] = _nfa.NewNode(); some[i] = _nfa.NewNode(); }
        for (int i = 0; i < n; i++)
        {
            var (name, value, isRequired) = props[i];
            var key = JsonSerializer.Serialize(name, KeyOptions) + ":";
            var first = _nfa.Seq(_json.Lit(key), _json.Ws(), value());
            _nfa.Eps(empty[i], first.Start);
            _nfa.Eps(first.End, some[i + 1]);
            var next = _nfa.Seq(_json.Lit(","), _json.Ws(), _json.Lit(key), _json.Ws(), value());
            _nfa.Eps(some[i], next.Start);
            _nfa.Eps(next.End, some[i + 1]);
            if (!isRequired)
            {
                _nfa.Eps(empty[i], empty[i + 1]);
                _nfa.Eps(some[i], some[i + 1]);
            }
        }
        var open = _json.Lit("{");
        _nfa.Eps(open.End, empty[0]);
        var close = _json.Lit("}");
        _nfa.Eps(empty[n], close.Start);
        _nfa.Eps(some[n], close.Start);
        return new Frag(open.Start, close.End);
    }

    private static readonly JsonSerializerOptions KeyOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private Frag Array(JsonElement s, string path)
    {
        int min = Count(s, "minItems", path) ?? 0;
        int? max = Count(s, "maxItems", path);
        if (max < min) throw Error("maxItems", path, "is below minItems: no array satisfies both");
        Func<Frag> item = _json.AnyValue;
        if (s.TryGetProperty("items", out var items))
        {
            if (items.ValueKind == JsonValueKind.Array) throw Error("items", path, "as an array (tuple validation) is not supported");
            if (items.ValueKind == JsonValueKind.False) { if (min > 0) throw Error("items", path, "false with minItems > 0 admits no array"); return _json.Lit("[]"); }
            item = () => Rule(items, $"{path}/items");
        }
        return _json.AnyArray(item, min, max);
    }

    private static int? Count(JsonElement s, string keyword, string path)
    {
        if (!s.TryGetProperty(keyword, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDecimal(out var d) || d < 0 || d != decimal.Truncate(d))
            throw Error(keyword, path, "must be a non-negative integer");
        if (d > MaxRepeat) throw Error(keyword, path, $"above {MaxRepeat} is not supported");
        return (int)d;
    }

    /// <summary>An integer within the schema's bounds (for a number: an integer, which is a number within them).</summary>
    private Frag IntegerRange(JsonElement s, string path, bool integerOnly)
    {
        var lo = -JsonGrammar.DefaultIntegerBound;
        var hi = JsonGrammar.DefaultIntegerBound;
        decimal? Bound(string k)
        {
            if (!s.TryGetProperty(k, out var v)) return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetDecimal(out var d)) throw Error(k, path, "must be a number");
            return d;
        }
        if (Bound("minimum") is { } min) lo = BigInteger.Max(lo, new BigInteger(decimal.Ceiling(min)));
        if (Bound("exclusiveMinimum") is { } xmin) lo = BigInteger.Max(lo, new BigInteger(decimal.Floor(xmin)) + 1);
        if (Bound("maximum") is { } max) hi = BigInteger.Min(hi, new BigInteger(decimal.Floor(max)));
        if (Bound("exclusiveMaximum") is { } xmax) hi = BigInteger.Min(hi, new BigInteger(decimal.Ceiling(xmax)) - 1);
        if (lo > hi)
            throw Error(Has(s, "maximum") ? "maximum" : "exclusiveMaximum", path,
                integerOnly ? "leaves no integer within the bounds" : "leaves no integer within the bounds (a bounded number is generated as an integer)");
        return _json.Integer(lo, hi);
    }

    /// <summary>A const or enum value, written compactly.</summary>
    private Frag Literal(JsonElement value)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            value.WriteTo(w);
        return _nfa.Literal(buffer.ToArray());
    }

    private (JsonElement Target, string Path) Resolve(JsonElement reference, string path)
    {
        if (reference.ValueKind != JsonValueKind.String) throw Error("$ref", path, "must be a string");
        var r = reference.GetString()!;
        if (!r.StartsWith('#')) throw Error("$ref", path, $"'{r}' is not a local reference (only '#/...' within the schema)");
        var node = _root;
        var pointer = r[1..];
        if (pointer.Length == 0) return (node, "");
        if (!pointer.StartsWith('/')) throw Error("$ref", path, $"'{r}' is not a JSON pointer");
        foreach (var raw in pointer[1..].Split('/'))
        {
            var part = Uri.UnescapeDataString(raw).Replace("~1", "/").Replace("~0", "~");
            if (node.ValueKind == JsonValueKind.Object && node.TryGetProperty(part, out var child)) node = child;
            else if (node.ValueKind == JsonValueKind.Array && int.TryParse(part, out var i) && i >= 0 && i < node.GetArrayLength()) node = node[i];
            else throw Error("$ref", path, $"'{r}' points to nothing in the schema");
        }
        return (node, pointer);
    }

    private static string Escape(string name) => name.Replace("~", "~0").Replace("/", "~1");
}
