using System.Diagnostics;
using System.Net;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ActorQuery.Bench.Load;

/// <summary>How one request of the load generator ended, in the terms of the soak's rule: every request is
/// answered, cancelled by its client, or refused; errors and unanswered requests are failures.</summary>
public enum RequestOutcome
{
    /// <summary>200 and a complete answer (a stream that reached its end marker).</summary>
    Answered,
    /// <summary>The client hung up on purpose (a disconnect mid-stream).</summary>
    CancelledByClient,
    /// <summary>429, or 503 with Retry-After: the server said no before it started.</summary>
    Refused,
    /// <summary>Any other status, or an error event inside the stream.</summary>
    Errored,
    /// <summary>No complete answer and no error: the connection broke, the stream ended early, or it timed out.</summary>
    Unanswered,
}

/// <summary>One request as the client saw it. Times are seconds since the request was sent.</summary>
public sealed record RequestResult(
    RequestOutcome Outcome, int Status, IReadOnlyList<double> ChunkSeconds, int OutputTokens, double Seconds, string? Error)
{
    /// <summary>Time to the first chunk with text; null when none came.</summary>
    public double? FirstTokenSeconds => ChunkSeconds.Count > 0 ? ChunkSeconds[0] : null;
}

/// <summary>
/// What to ask: a prompt (text, or token ids on /v1/completions), output length and sampling, streaming or not, and
/// optionally when the client disconnects on purpose (after so many chunks, or after a delay when not streaming).
/// </summary>
public sealed record LoadRequest(
    JsonNode Prompt, int MaxTokens, bool IgnoreEos = true, float Temperature = 0, bool Stream = true,
    LoadEndpoint Endpoint = LoadEndpoint.Completions, int? DisconnectAfterChunks = null, TimeSpan? DisconnectAfter = null);

public enum LoadEndpoint
{
    /// <summary>POST /v1/completions (OpenAI's SSE: data lines, then <c>[DONE]</c>).</summary>
    Completions,
    /// <summary>POST /query (native SSE: <c>chunk</c> events, then one <c>done</c> event).</summary>
    Native,
}

/// <summary>
/// Sends generation requests over real HTTP and times every server-sent chunk as it arrives (parsed with the
/// framework's <see cref="SseParser"/>). Never throws for what the server or the network does: every request
/// becomes a <see cref="RequestResult"/>.
/// </summary>
public sealed class CompletionClient(HttpClient http)
{
    public async Task<RequestResult> SendAsync(LoadRequest request, CancellationToken cancellationToken = default)
    {
        using var disconnect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (request.DisconnectAfter is { } delay) disconnect.CancelAfter(delay);
        var sw = Stopwatch.StartNew();
        var chunks = new List<double>();
        int status = 0;
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, request.Endpoint == LoadEndpoint.Native ? "/query" : "/v1/completions")
            {
                Content = new StringContent(Body(request), Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, disconnect.Token);
            status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
            {
                var text = await response.Content.ReadAsStringAsync(disconnect.Token);
                bool refused = response.StatusCode == HttpStatusCode.TooManyRequests
                    || (response.StatusCode == HttpStatusCode.ServiceUnavailable && response.Headers.RetryAfter is not null);
                return new(refused ? RequestOutcome.Refused : RequestOutcome.Errored, status, chunks, 0, sw.Elapsed.TotalSeconds, Shorten(text));
            }
            if (!request.Stream)
            {
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(disconnect.Token));
                chunks.Add(sw.Elapsed.TotalSeconds);
                return new(RequestOutcome.Answered, status, chunks, CompletionTokens(doc.RootElement) ?? 0, sw.Elapsed.TotalSeconds, null);
            }

            await using var stream = await response.Content.ReadAsStreamAsync(disconnect.Token);
            int? usage = null;
            await foreach (var item in SseParser.Create(stream).EnumerateAsync(disconnect.Token))
            {
                double now = sw.Elapsed.TotalSeconds;
                if (item.Data == "[DONE]")
                    return new(RequestOutcome.Answered, status, chunks, usage ?? chunks.Count, now, null);
                using var doc = JsonDocument.Parse(item.Data);
                var root = doc.RootElement;
                if (item.EventType == "error" || root.TryGetProperty("error", out _))
                    return new(RequestOutcome.Errored, status, chunks, usage ?? chunks.Count, now, Shorten(item.Data));
                if (request.Endpoint == LoadEndpoint.Native && item.EventType == "done")
                    return new(RequestOutcome.Answered, status, chunks, CompletionTokens(root) ?? chunks.Count, now, null);
                usage = CompletionTokens(root) ?? usage;
                if (ChunkText(root, request.Endpoint) is { Length: > 0 })
                {
                    chunks.Add(now);
                    if (chunks.Count == request.DisconnectAfterChunks) disconnect.Cancel();
                }
            }
            return new(RequestOutcome.Unanswered, status, chunks, usage ?? chunks.Count, sw.Elapsed.TotalSeconds,
                "the stream ended without its end marker");
        }
        catch (OperationCanceledException) when (disconnect.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return new(RequestOutcome.CancelledByClient, status, chunks, chunks.Count, sw.Elapsed.TotalSeconds, null);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException or JsonException)
        {
            // HttpClient.Timeout surfaces as an OperationCanceledException we did not ask for.
            return new(RequestOutcome.Unanswered, status, chunks, chunks.Count, sw.Elapsed.TotalSeconds, $"{e.GetType().Name}: {e.Message}");
        }
    }

    private static string Body(LoadRequest r)
    {
        var body = new JsonObject
        {
            ["prompt"] = r.Prompt.DeepClone(),
            [r.Endpoint == LoadEndpoint.Native ? "max_new_tokens" : "max_tokens"] = r.MaxTokens,
            ["ignore_eos"] = r.IgnoreEos,
            ["temperature"] = r.Temperature,
            ["stream"] = r.Stream,
        };
        if (r.Stream && r.Endpoint == LoadEndpoint.Completions) body["stream_options"] = new JsonObject { ["include_usage"] = true };
        return body.ToJsonString();
    }

    private static string? ChunkText(JsonElement root, LoadEndpoint endpoint)
    {
        if (endpoint == LoadEndpoint.Native)
            return root.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (!root.TryGetProperty("choices", out var choices) || choices.GetArrayLength() == 0) return null;
        return choices[0].TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String ? text.GetString() : null;
    }

    private static int? CompletionTokens(JsonElement root) =>
        root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object && u.TryGetProperty("completion_tokens", out var c)
            ? c.GetInt32() : null;

    private static string Shorten(string s) => s.Length <= 300 ? s : s[..300] + "…";
}
