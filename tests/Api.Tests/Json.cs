using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace ActorQuery.Api.Tests;

internal static class Json
{
    public static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    public static async Task<JsonElement> ReadAsync(HttpResponseMessage response)
    {
        string text = await response.Content.ReadAsStringAsync();
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public static async Task<HttpResponseMessage> PostAsync(HttpClient http, string path, string json) =>
        await http.PostAsync(path, Body(json));

    public static string? ContentType(HttpResponseMessage r) => r.Content.Headers.ContentType?.MediaType;

    public static MediaTypeHeaderValue JsonType => new("application/json");
}
