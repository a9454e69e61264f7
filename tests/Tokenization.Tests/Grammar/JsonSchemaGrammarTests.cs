using ActorQuery.Tokenization.Grammar;
using static ActorQuery.Tokenization.Tests.Grammar.GrammarTestKit;

namespace ActorQuery.Tokenization.Tests.Grammar;

/// <summary>One behaviour per schema keyword: what the compiled automaton accepts as a whole output, and what it
/// refuses.</summary>
public class JsonSchemaGrammarTests
{
    [Fact]
    public void Type_integer_accepts_integers_without_leading_zeros_and_refuses_fractions()
    {
        var a = Schema("""{"type":"integer"}""");
        Assert.True(Accepts(a, "0"));
        Assert.True(Accepts(a, "-42"));
        Assert.True(Accepts(a, "999999999999999"));
        Assert.False(Accepts(a, "1000000000000000"));         // 16 digits: past the bounded form
        Assert.False(IsPrefix(a, "01"));
        Assert.False(IsPrefix(a, "-0"));
        Assert.False(IsPrefix(a, "1.5"));
    }

    [Fact]
    public void Type_number_accepts_fractions_and_exponents()
    {
        var a = Schema("""{"type":"number"}""");
        foreach (var ok in new[] { "0", "-1.25", "3e5", "2.5E-12", "10" }) Assert.True(Accepts(a, ok), ok);
        foreach (var bad in new[] { "1.", ".5", "1e", "--1", "+1", "1e100" }) Assert.False(Accepts(a, bad), bad);
    }

    [Fact]
    public void Type_string_accepts_escapes_and_unicode_and_refuses_raw_control_characters_and_lone_surrogates()
    {
        var a = Schema("""{"type":"string"}""");
        Assert.True(Accepts(a, "\"héllo \\\"w\\\" \\u00e9 \\n 東京 🎉\""));
        Assert.False(IsPrefix(a, "\"a\nb"));
        Assert.False(IsPrefix(a, "\"\\ud800"));
        Assert.False(IsPrefix(a, "\"\\x"));
        Assert.False(Accepts(a, "\"open"));
    }

    [Fact]
    public void String_min_and_max_length_count_characters_not_bytes()
    {
        var a = Schema("""{"type":"string","minLength":2,"maxLength":3}""");
        Assert.False(Accepts(a, "\"a\""));
        Assert.True(Accepts(a, "\"ab\""));
        Assert.True(Accepts(a, "\"東京🎉\""));                 // 3 characters, 10 bytes
        Assert.True(Accepts(a, "\"\\n\\t\""));                // escapes are one character each
        Assert.False(IsPrefix(a, "\"abcd"));
    }

    [Fact]
    public void Boolean_and_null()
    {
        Assert.True(Accepts(Schema("""{"type":"boolean"}"""), "false"));
        Assert.False(Accepts(Schema("""{"type":"boolean"}"""), "null"));
        Assert.True(Accepts(Schema("""{"type":"null"}"""), "null"));
    }

    [Fact]
    public void Type_list_accepts_each_type()
    {
        var a = Schema("""{"type":["integer","null"]}""");
        Assert.True(Accepts(a, "7"));
        Assert.True(Accepts(a, "null"));
        Assert.False(IsPrefix(a, "\""));
    }

    [Fact]
    public void Properties_come_in_schema_order_with_required_ones_present_and_optional_ones_skippable()
    {
        var a = Schema("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"boolean"},"c":{"type":"null"}},"required":["b"]}""");
        Assert.True(Accepts(a, """{"b":true}"""));
        Assert.True(Accepts(a, """{"a":1,"b":true}"""));
        Assert.True(Accepts(a, """{"a": 1, "b": false, "c": null}"""));
        Assert.False(Accepts(a, """{"a":1}"""));              // b is required
        Assert.False(IsPrefix(a, """{"b":true,"a":"""));        // schema order
        Assert.False(IsPrefix(a, """{"d":"""));                 // no keys outside properties
        Assert.False(IsPrefix(a, """{ "b":"""));                // whitespace only after : and ,
        Assert.False(IsPrefix(a, """{"b":  """));               // at most one space
    }

    [Fact]
    public void Required_keys_missing_from_properties_take_any_value()
    {
        var a = Schema("""{"type":"object","required":["x"]}""");
        Assert.True(Accepts(a, """{"x":[1,{"y":null}]}"""));
        Assert.False(Accepts(a, "{}"));
    }

    [Fact]
    public void Additional_properties_false_without_properties_is_the_empty_object_and_a_schema_types_every_value()
    {
        Assert.True(Accepts(Schema("""{"type":"object","additionalProperties":false}"""), "{}"));
        Assert.False(IsPrefix(Schema("""{"type":"object","additionalProperties":false}"""), "{\""));
        var map = Schema("""{"type":"object","additionalProperties":{"type":"integer"}}""");
        Assert.True(Accepts(map, """{"any":1,"keys":2}"""));
        Assert.False(IsPrefix(map, """{"k":"v"""));
    }

    [Fact]
    public void Enum_and_const_accept_exactly_their_values()
    {
        var e = Schema("""{"enum":["red",1.5,null,{"a":[true]}]}""");
        foreach (var ok in new[] { "\"red\"", "1.5", "null", """{"a":[true]}""" }) Assert.True(Accepts(e, ok), ok);
        Assert.False(Accepts(e, "\"blue\""));
        var c = Schema("""{"const":"x\"y"}""");
        Assert.True(Accepts(c, "\"x\\\"y\""));
        Assert.False(Accepts(c, "\"xy\""));
    }

    [Fact]
    public void Items_with_min_and_max_items_bound_the_array()
    {
        var a = Schema("""{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2}""");
        Assert.False(Accepts(a, "[]"));
        Assert.True(Accepts(a, "[true]"));
        Assert.True(Accepts(a, "[true, false]"));
        Assert.False(IsPrefix(a, "[true,false,"));
        Assert.False(IsPrefix(a, "[1"));
    }

    [Fact]
    public void AnyOf_and_oneOf_accept_each_alternative()
    {
        foreach (var kw in new[] { "anyOf", "oneOf" })
        {
            var a = Schema($$"""{"{{kw}}":[{"type":"integer"},{"type":"string","maxLength":1}]}""");
            Assert.True(Accepts(a, "12"));
            Assert.True(Accepts(a, "\"z\""));
            Assert.False(Accepts(a, "\"zz\""));
            Assert.False(Accepts(a, "true"));
        }
    }

    [Fact]
    public void Integer_minimum_and_maximum_hold_for_every_length_and_sign()
    {
        var a = Schema("""{"type":"integer","minimum":-17,"maximum":205}""");
        for (int i = -40; i <= 300; i++) Assert.Equal(i >= -17 && i <= 205, Accepts(a, i.ToString()));
        var x = Schema("""{"type":"integer","exclusiveMinimum":3,"exclusiveMaximum":7}""");
        for (int i = 0; i <= 10; i++) Assert.Equal(i is > 3 and < 7, Accepts(x, i.ToString()));
        var big = Schema("""{"type":"integer","minimum":1000}""");
        Assert.False(Accepts(big, "999"));
        Assert.True(Accepts(big, "1000"));
        Assert.True(Accepts(big, "123456789012345"));
    }

    [Fact]
    public void A_bounded_number_is_generated_as_an_integer_within_the_bounds()
    {
        var a = Schema("""{"type":"number","minimum":0.5,"maximum":3}""");
        Assert.True(Accepts(a, "1"));
        Assert.True(Accepts(a, "3"));
        Assert.False(Accepts(a, "0"));
        Assert.False(Accepts(a, "4"));
        Assert.Equal("maximum", Refuses("""{"type":"number","minimum":0.2,"maximum":0.8}""").Keyword);
    }

    [Fact]
    public void Ref_to_defs_and_definitions_resolves_and_may_recurse()
    {
        var a = Schema("""{"$defs":{"P":{"type":"integer","minimum":0,"maximum":9}},"type":"array","items":{"$ref":"#/$defs/P"}}""");
        Assert.True(Accepts(a, "[1,2]"));
        Assert.False(IsPrefix(a, "[10"));
        var old = Schema("""{"definitions":{"B":{"type":"boolean"}},"$ref":"#/definitions/B"}""");
        Assert.True(Accepts(old, "true"));
        var tree = Schema("""{"$defs":{"T":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/T"}}},"required":["v"]}},"$ref":"#/$defs/T"}""");
        Assert.True(Accepts(tree, """{"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]}"""));
        Assert.False(Accepts(tree, """{"v":1,"kids":[{"kids":[]}]}"""));
    }

    [Fact]
    public void Annotations_are_ignored()
    {
        var a = Schema("""{"title":"T","description":"d","$schema":"https://json-schema.org/draft/2020-12/schema","type":"boolean","default":true,"examples":[false]}""");
        Assert.True(Accepts(a, "true"));
    }

    [Fact]
    public void Json_object_accepts_any_object_and_only_objects()
    {
        var a = GrammarCompiler.Compile(OutputConstraint.JsonObject);
        Assert.True(Accepts(a, """{"a":[1,2.5,{"b":null}],"c":"d","e":{}}"""));
        Assert.True(Accepts(a, "{}"));
        Assert.False(IsPrefix(a, "["));
        Assert.False(Accepts(a, """{"a":1"""));
    }

    [Theory]
    [InlineData("""{"type":"string","pattern":"^a"}""", "pattern")]
    [InlineData("""{"type":"string","format":"date-time"}""", "format")]
    [InlineData("""{"type":"array","uniqueItems":true}""", "uniqueItems")]
    [InlineData("""{"type":"object","properties":{"x":{"type":"integer","multipleOf":3}}}""", "multipleOf")]
    [InlineData("""{"not":{"type":"null"}}""", "not")]
    [InlineData("""{"type":"object","patternProperties":{"^x":{}}}""", "patternProperties")]
    [InlineData("""{"type":"object","minProperties":1}""", "minProperties")]
    [InlineData("""{"type":"array","prefixItems":[{"type":"integer"}]}""", "prefixItems")]
    [InlineData("""{"if":{"type":"integer"},"then":{"minimum":1}}""", "if")]
    [InlineData("""{"allOf":[{"type":"integer"},{"minimum":1}]}""", "allOf")]
    [InlineData("""{"$ref":"https://example.com/s.json"}""", "$ref")]
    [InlineData("""{"type":"integer","anyOf":[{"minimum":1}]}""", "type")]
    [InlineData("""{"type":"date"}""", "type")]
    public void An_unsupported_keyword_is_an_error_naming_it(string schema, string keyword)
    {
        var e = Refuses(schema);
        Assert.Equal(keyword, e.Keyword);
        Assert.Contains($"'{keyword}'", e.Message);
    }

    [Fact]
    public void An_unsupported_keyword_deep_in_the_schema_is_named_with_its_path()
    {
        var e = Refuses("""{"type":"object","properties":{"a":{"type":"array","items":{"type":"string","pattern":"x"}}}}""");
        Assert.Equal("pattern", e.Keyword);
        Assert.Equal("/properties/a/items", e.Path);
    }

    [Fact]
    public void Unsatisfiable_bounds_and_malformed_schemas_are_errors()
    {
        Assert.Equal("maximum", Refuses("""{"type":"integer","minimum":5,"maximum":4}""").Keyword);
        Assert.Equal("maxItems", Refuses("""{"type":"array","minItems":3,"maxItems":2}""").Keyword);
        Assert.Contains("not valid JSON", Refuses("{").Message);
        Assert.Contains("false admits no value", Refuses("false").Message);
        Assert.Contains("admits no output", Refuses("""{"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}""").Message);
    }

    [Fact]
    public void Every_test_schema_compiles()
    {
        foreach (var s in TestSchemas) Schema(s);
    }
}
