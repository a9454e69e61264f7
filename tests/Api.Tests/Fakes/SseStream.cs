using System.Text.Json;

namespace ActorQuery.Api.Tests.Fakes;

/// <summary>An open server-sent events stream, read one event at a time as the server sends them.</summary>
public sealed class SseStream : IAsyncDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private SseStream(HttpResponseMessage response, StreamReader reader)
    {
        _response = response;
        _reader = reader;
    }

    public HttpResponseMessage Response => _response;

    public static async Task<SseStream> OpenAsync(HttpClient http, string path)
    {
        var response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        return new SseStream(response, new StreamReader(await response.Content.ReadAsStreamAsync()));
    }

    /// <summary>The next event, or a <see cref="TimeoutException"/> naming what was awaited.</summary>
    public async Task<(string Event, JsonElement Data)> NextAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        string? name = null;
        var data = new List<string>();
        try
        {
            while (true)
            {
                string? line = await _reader.ReadLineAsync(cts.Token) ?? throw new EndOfStreamException("the event stream ended");
                if (line.Length == 0)
                {
                    if (data.Count == 0) continue;
                    return (name ?? "message", JsonDocument.Parse(string.Join("\n", data)).RootElement.Clone());
                }
                if (line.StartsWith("event:")) name = line[6..].Trim();
                else if (line.StartsWith("data:")) data.Add(line[5..].TrimStart());
            }
        }
        catch (OperationCanceledException) { throw new TimeoutException($"no event within {timeout.TotalSeconds:0.#} s"); }
    }

    /// <summary>Reads events until one named <paramref name="name"/> satisfies <paramref name="match"/>.</summary>
    public async Task<JsonElement> NextMatchingAsync(string name, Func<JsonElement, bool> match, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) throw new TimeoutException($"no {name} event {what} within {timeout.TotalSeconds:0.#} s");
            (string ev, JsonElement data) = await NextAsync(left);
            if (ev == name && match(data)) return data;
        }
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _response.Dispose();
        return ValueTask.CompletedTask;
    }
}
