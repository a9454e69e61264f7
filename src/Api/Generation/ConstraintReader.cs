using System.Text.Json;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Api.Generation;

/// <summary>
/// Reads the output constraint of a request (OpenAI's <c>response_format</c>, or /query's <c>json_schema</c>,
/// <c>regex</c>, <c>choices</c>) and compiles it once here, so that a schema the engine cannot enforce is a 400
/// naming the field and the keyword before anything is queued. The engine compiles it again against its vocabulary.
/// </summary>
internal static class ConstraintReader
{
    /// <summary>Longest constraint source accepted (a schema, a regex, the choices' JSON).</summary>
    public const int MaxSourceChars = 64 * 1024;

    public static OutputConstraint? FromResponseFormat(ResponseFormatDto? format)
    {
        if (format is null) return null;
        switch (format.Type)
        {
            case null: throw ApiException.BadRequest("response_format.type", "is required (text, json_object or json_schema)");
            case "text": return null;
            case "json_object": return OutputConstraint.JsonObject;
            case "json_schema":
                if (format.JsonSchema is null) throw ApiException.BadRequest("response_format.json_schema", "is required when type is json_schema");
                if (format.JsonSchema.Name is { Length: > 64 } || format.JsonSchema.Name is { } n && !n.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                    throw ApiException.BadRequest("response_format.json_schema.name", "must be at most 64 characters of a-z, A-Z, 0-9, _ and -");
                if (format.JsonSchema.Schema is not { } schema)
                    throw ApiException.BadRequest("response_format.json_schema.schema", "is required");
                return Checked(new OutputConstraint(ConstraintKind.JsonSchema, schema.GetRawText()), "response_format.json_schema.schema");
            default:
                throw ApiException.BadRequest("response_format.type", $"'{format.Type}' is not one of text, json_object, json_schema");
        }
    }

    public static OutputConstraint? FromNative(NativeQueryRequest body)
    {
        var given = new List<string>();
        if (body.JsonSchema is not null) given.Add("json_schema");
        if (body.Regex is not null) given.Add("regex");
        if (body.Choices is not null) given.Add("choices");
        if (given.Count > 1) throw ApiException.BadRequest(given[1], $"give at most one of json_schema, regex and choices (also given: {given[0]})");
        if (body.JsonSchema is { } schema) return Checked(new OutputConstraint(ConstraintKind.JsonSchema, schema.GetRawText()), "json_schema");
        if (body.Regex is { } regex) return Checked(new OutputConstraint(ConstraintKind.Regex, regex), "regex");
        if (body.Choices is { } choices)
        {
            if (choices.Any(c => c is null)) throw ApiException.BadRequest("choices", "must be an array of strings");
            return Checked(OutputConstraint.Choices(choices), "choices");
        }
        return null;
    }

    private static OutputConstraint Checked(OutputConstraint c, string field)
    {
        if (c.Source.Length > MaxSourceChars) throw ApiException.BadRequest(field, $"is longer than {MaxSourceChars} characters");
        try { GrammarCompiler.Validate(c); }
        catch (GrammarException e) { throw ApiException.BadRequest(field, e.Message); }
        return c;
    }
}
