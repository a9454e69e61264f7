using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ActorQuery.Api;

/// <summary>One set of JSON settings for every body this API reads or writes: snake_case names as OpenAI and vLLM use.</summary>
public static class ApiJson
{
    public static readonly JsonSerializerOptions Options = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    public static JsonSerializerOptions Configure(JsonSerializerOptions o)
    {
        o.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        o.PropertyNameCaseInsensitive = false;
        o.NumberHandling = JsonNumberHandling.Strict; // "max_tokens": "12" is a wrong type, not a number
        o.UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip; // unknown fields are ignored, as OpenAI does
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        // Model output may hold any character; escape only what JSON requires so that clients see the text itself.
        o.Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        return o;
    }
}
