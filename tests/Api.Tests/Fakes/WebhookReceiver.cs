using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace ActorQuery.Api.Tests.Fakes;

/// <summary>A real HTTP listener on a free loopback port that records every POST it gets (body and arrival time) and
/// answers with the status <see cref="Answer"/> chooses; <see cref="Hold"/> keeps requests waiting until released.</summary>
public sealed class WebhookReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Task _loop;
    private TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="ContentLength">The request's Content-Length; -1 when it had none (a chunked body).</param>
    public sealed record Received(JsonElement Body, TimeSpan At, int Answered, long ContentLength);

    public ConcurrentQueue<Received> Requests { get; } = new();
    /// <summary>The status for the Nth request (1-based); 200 unless set.</summary>
    public Func<int, int> Answer { get; set; } = _ => 200;
    /// <summary>While true, requests wait (unanswered) until <see cref="Release"/>.</summary>
    public bool Hold { get; set; }
    public Uri Url { get; }

    public WebhookReceiver()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; probe.Stop(); }
        Url = new Uri($"http://127.0.0.1:{port}/alerts/");
        _listener.Prefixes.Add(Url.ToString());
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public void Release() => _held.TrySetResult();

    private int _count;

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        int n = Interlocked.Increment(ref _count);
        using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
        string body = await reader.ReadToEndAsync();
        var at = _clock.Elapsed;
        int status = Answer(n);
        Requests.Enqueue(new Received(JsonDocument.Parse(body).RootElement.Clone(), at, status, context.Request.ContentLength64));
        if (Hold) await _held.Task;
        context.Response.StatusCode = status;
        context.Response.Close();
    }

    public void Dispose()
    {
        Release();
        _listener.Stop();
        _listener.Close();
    }
}
