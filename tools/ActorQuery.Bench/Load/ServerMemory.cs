using System.Text.Json;

namespace ActorQuery.Bench.Load;

/// <summary>
/// The server's resident memory: from <c>/proc/PID/status</c> when its PID is known (exact, read at once), else from
/// <c>GET /memory</c>, waiting for a watchdog reading taken after the call (the watchdog reads every few seconds;
/// the Prometheus registry is the server's own, without the process collector).
/// </summary>
public sealed class ServerMemory(HttpClient http, int? serverPid)
{
    public string Source => serverPid is { } pid ? $"/proc/{pid}/status VmRSS" : "GET /memory actual.resident_bytes (the watchdog's reading)";

    public async Task<long> ResidentBytesAsync(CancellationToken cancellationToken = default)
    {
        if (serverPid is { } pid)
        {
            foreach (var line in await File.ReadAllLinesAsync($"/proc/{pid}/status", cancellationToken))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            throw new InvalidOperationException($"/proc/{pid}/status has no VmRSS line");
        }
        var asked = DateTimeOffset.UtcNow;
        for (int i = 0; i < 60; i++)
        {
            using var doc = JsonDocument.Parse(await http.GetStringAsync("/memory", cancellationToken));
            var root = doc.RootElement;
            if (root.GetProperty("watchdog").GetProperty("at").GetDateTimeOffset() >= asked)
                return root.GetProperty("actual").GetProperty("resident_bytes").GetInt64();
            await Task.Delay(500, cancellationToken);
        }
        throw new TimeoutException("GET /memory gave no reading newer than the request for 30 s");
    }

    /// <summary>Waits until the server reports nothing in flight and nothing queued; false after <paramref name="limit"/>.</summary>
    public async Task<bool> WaitIdleAsync(TimeSpan limit, CancellationToken cancellationToken = default)
    {
        var until = DateTime.UtcNow + limit;
        do
        {
            using var doc = JsonDocument.Parse(await http.GetStringAsync("/health", cancellationToken));
            if (doc.RootElement.GetProperty("in_flight").GetInt32() == 0 && doc.RootElement.GetProperty("queued").GetInt32() == 0) return true;
            await Task.Delay(200, cancellationToken);
        } while (DateTime.UtcNow < until);
        return false;
    }
}
