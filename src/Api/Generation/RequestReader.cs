using System.Text.Json;
using System.Text.Unicode;
using ActorQuery.Api.Errors;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace ActorQuery.Api.Generation;

/// <summary>
/// Reads a JSON request body with the checks a client needs explained: content type (415), size (413), UTF-8
/// and JSON syntax (400 "body"), field types (400 naming the field). Model binding in minimal APIs would answer
/// these with bare 400s, so the body is read here by hand.
/// </summary>
internal static class RequestReader
{
    public static async Task<T> ReadAsync<T>(HttpContext context, ApiOptions options) where T : class
    {
        var request = context.Request;
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || !mediaType.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType, "Content-Type",
                $"Content-Type: must be application/json, got '{(string.IsNullOrEmpty(request.ContentType) ? "(none)" : request.ContentType)}'",
                "unsupported_media_type");
        if (mediaType.Charset.HasValue && !mediaType.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase))
            throw new ApiException(StatusCodes.Status415UnsupportedMediaType, "Content-Type",
                $"Content-Type: only charset=utf-8 is accepted, got '{mediaType.Charset}'", "unsupported_media_type");

        long limit = options.MaxBodyBytes;
        if (request.ContentLength > limit) throw TooLarge(request.ContentLength.Value, limit);

        byte[] body = await ReadLimitedAsync(request.Body, limit, context.RequestAborted);
        if (!Utf8.IsValid(body))
            throw new ApiException(400, "body", "body: is not valid UTF-8", "invalid_encoding");

        JsonDocument document;
        try { document = JsonDocument.Parse(body); }
        catch (JsonException e)
        {
            throw new ApiException(400, "body",
                $"body: malformed JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}", "invalid_json");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new ApiException(400, "body", "body: must be a JSON object", "invalid_json");
            try
            {
                return document.RootElement.Deserialize<T>(ApiJson.Options)
                       ?? throw new ApiException(400, "body", "body: must be a JSON object", "invalid_json");
            }
            catch (JsonException e)
            {
                string field = FieldFromPath(e.Path);
                throw new ApiException(400, field, $"{field}: has the wrong type or is out of range", "invalid_type");
            }
        }
    }

    private static async Task<byte[]> ReadLimitedAsync(Stream body, long limit, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > limit) throw TooLarge(null, limit);
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    private static ApiException TooLarge(long? size, long limit) =>
        new(StatusCodes.Status413PayloadTooLarge, "body",
            $"body: {(size is { } s ? $"{s} bytes" : "the body")} is over the limit of {limit} bytes", "request_too_large");

    /// <summary>"$.messages[0].role" → "messages[0].role".</summary>
    internal static string FieldFromPath(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$") return "body";
        return path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
    }
}
