using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace ActorQuery.Api.Dashboard;

/// <summary>Limits of the alert webhook.</summary>
public sealed record AlertWebhookOptions
{
    /// <summary>Alerts waiting to be sent; beyond this new ones are dropped (and logged), so that a dead receiver cannot
    /// grow memory.</summary>
    public int QueueCapacity { get; init; } = 256;
    /// <summary>Tries per alert in all, the first included.</summary>
    public int MaxAttempts { get; init; } = 5;
    /// <summary>Wait before the second try; it doubles before each next one, up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How long one POST may take.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// POSTs alerts as JSON (<c>kind, status, severity, node, worker, message, values, time</c>) to one URL, in order, from a
/// bounded queue: a failed POST (an error, a timeout, a status other than 2xx) is retried with exponential backoff up to
/// <see cref="AlertWebhookOptions.MaxAttempts"/> times, then given up with an error in the log.
/// </summary>
public sealed class AlertWebhook : IAsyncDisposable
{
    private readonly Uri _url;
    private readonly AlertWebhookOptions _options;
    private readonly HttpClient _http;
    private readonly ILogger _logger;
    private readonly Channel<Alert> _queue;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _sent, _dropped, _failed;

    public AlertWebhook(Uri url, AlertWebhookOptions options, ILogger logger, HttpMessageHandler? handler = null)
    {
        _url = url;
        _options = options;
        _logger = logger;
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.Timeout = options.Timeout;
        _queue = Channel.CreateBounded<Alert>(new BoundedChannelOptions(options.QueueCapacity)
        {
            // Wait mode: TryWrite answers false when full (DropWrite would answer true and drop silently).
            FullMode = BoundedChannelFullMode.Wait, SingleReader = true,
        });
        _loop = Task.Run(() => SendLoopAsync(_stop.Token));
    }

    public Uri Url => _url;
    /// <summary>Alerts delivered (a 2xx answer).</summary>
    public long Sent => Interlocked.Read(ref _sent);
    /// <summary>Alerts refused because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);
    /// <summary>Alerts given up after every try failed.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Queues <paramref name="alert"/>; false (and a warning in the log) when the queue is full.</summary>
    public bool Enqueue(Alert alert)
    {
        if (_queue.Writer.TryWrite(alert)) return true;
        Interlocked.Increment(ref _dropped);
        _logger.LogWarning("Alert webhook queue full ({Capacity}): dropped {AlertKind} {AlertStatus} for {Node}", _options.QueueCapacity,
            alert.Kind, alert.Status, alert.Node);
        return false;
    }

    /// <summary>The delay before try <paramref name="attempt"/> (2, 3, ...): the initial backoff, doubled each time, capped.</summary>
    public static TimeSpan Backoff(AlertWebhookOptions options, int attempt)
    {
        double ms = options.InitialBackoff.TotalMilliseconds * Math.Pow(2, Math.Max(0, attempt - 2));
        return TimeSpan.FromMilliseconds(Math.Min(ms, options.MaxBackoff.TotalMilliseconds));
    }

    private async Task SendLoopAsync(CancellationToken ct)
    {
        try
        {
            await foreach (var alert in _queue.Reader.ReadAllAsync(ct))
                await SendAsync(alert, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }

    private async Task SendAsync(Alert alert, CancellationToken ct)
    {
        for (int attempt = 1; attempt <= _options.MaxAttempts; attempt++)
        {
            if (attempt > 1) await Task.Delay(Backoff(_options, attempt), ct);
            string? error;
            try
            {
                // A whole body with its Content-Length: small receivers (scripts, relays) often cannot read a chunked one.
                using var content = new StringContent(JsonSerializer.Serialize(Body(alert), ApiJson.Options), Encoding.UTF8, "application/json");
                using var response = await _http.PostAsync(_url, content, ct);
                if (response.IsSuccessStatusCode)
                {
                    Interlocked.Increment(ref _sent);
                    return;
                }
                error = $"{(int)response.StatusCode} {response.ReasonPhrase}";
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                error = e is TaskCanceledException ? $"no answer in {_options.Timeout.TotalSeconds:0.#} s" : e.Message;
            }
            _logger.LogWarning("Alert webhook {Url} try {Attempt}/{MaxAttempts} for {AlertKind} {AlertStatus} failed: {Error}",
                _url, attempt, _options.MaxAttempts, alert.Kind, alert.Status, error);
        }
        Interlocked.Increment(ref _failed);
        _logger.LogError("Alert webhook {Url} gave up on {AlertKind} {AlertStatus} for {Node} after {MaxAttempts} tries",
            _url, alert.Kind, alert.Status, alert.Node, _options.MaxAttempts);
    }

    /// <summary>The JSON body: the alert's fields, <c>values</c> as an object, <c>time</c> in ISO 8601.</summary>
    public static object Body(Alert a) => new
    {
        kind = a.Kind, status = a.Status, severity = a.Severity, node = a.Node, worker = a.Worker, message = a.Message,
        values = a.Values, time = a.Time,
    };

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        // Give what is queued a moment to leave, then stop retrying.
        await Task.WhenAny(_loop, Task.Delay(TimeSpan.FromSeconds(2)));
        await _stop.CancelAsync();
        try { await _loop; } catch (OperationCanceledException) { }
        _http.Dispose();
        _stop.Dispose();
    }
}
