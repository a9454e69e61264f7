using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using ActorQuery.Actors;
using ActorQuery.Contracts;

namespace ActorQuery.TestSupport;

/// <summary>
/// A deterministic stand-in for the QueryRouter. It echoes the prompt back one byte-token at a time (finish
/// "stop" when the whole prompt was echoed, "length" when max_new_tokens cut it short). Markers in the prompt
/// text choose other endings: <c>#refuse:REASON</c>, <c>#timeout</c>, <c>#fail</c>, <c>#fail-mid</c>,
/// <c>#cancelled</c>, <c>#hang</c> (one token, then waits until cancelled), <c>#hold</c> (waits for <see cref="Release"/>).
/// With <see cref="MaxInFlight"/>/<see cref="MaxQueue"/> set it refuses with QueueFull beyond those, as the router does.
/// </summary>
public sealed class FakeQueryClient : IQueryClient
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _cancelSeen = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _admitted;
    private int _submitted;

    public int? MaxInFlight { get; init; }
    public int MaxQueue { get; init; }
    public bool Ready { get; set; } = true;
    /// <summary>Held queries start once this many queries were submitted (admitted or not).</summary>
    public int ReleaseAfterSubmissions { get; set; } = int.MaxValue;

    public ConcurrentQueue<QueryRequest> Requests { get; } = new();
    public QueryRequest? LastRequest { get; private set; }
    public int Active => Volatile.Read(ref _admitted);
    public int Submitted => Volatile.Read(ref _submitted);
    public int CancellationsSeen;
    /// <summary>Completes when a query saw its cancellation token fire (a client went away).</summary>
    public Task CancellationSeen => _cancelSeen.Task;

    public void Release() => _release.TrySetResult();

    public async IAsyncEnumerable<QueryEvent> SubmitAsync(QueryRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        Requests.Enqueue(request);
        LastRequest = request;
        string id = request.QueryId;
        string prompt = Encoding.UTF8.GetString(request.PromptTokenIds.Where(i => i < 256).Select(i => (byte)i).ToArray());

        int submitted = Interlocked.Increment(ref _submitted);
        int admitted = Interlocked.Increment(ref _admitted);
        if (MaxInFlight is { } max && admitted > max + MaxQueue)
        {
            Interlocked.Decrement(ref _admitted);
            if (submitted >= ReleaseAfterSubmissions) Release();
            yield return new QueryRefused(id, RefusalReason.QueueFull, "the queue is full (fake router)", TimeSpan.FromSeconds(2));
            yield break;
        }
        if (submitted >= ReleaseAfterSubmissions) Release();
        try
        {
            if (prompt.Contains("#refuse:"))
            {
                var reason = Enum.Parse<RefusalReason>(prompt.Split("#refuse:")[1].Split(' ', '\n')[0]);
                TimeSpan? retry = reason is RefusalReason.MemoryPressure or RefusalReason.QueueFull ? TimeSpan.FromSeconds(2) : null;
                yield return new QueryRefused(id, reason, $"refused: {reason}", retry);
                yield break;
            }
            if (prompt.Contains("#timeout")) { yield return new QueryTimedOut(id, TimeSpan.FromSeconds(3)); yield break; }
            if (prompt.Contains("#fail-mid"))
            {
                yield return Token(id, request.PromptTokenIds[0], request.Sampling);
                yield return new QueryFailed(id, "worker died twice");
                yield break;
            }
            if (prompt.Contains("#fail")) { yield return new QueryFailed(id, "out of memory after the retry"); yield break; }
            if (prompt.Contains("#cancelled")) { yield return new QueryCancelled(id); yield break; }
            if (prompt.Contains("#hold") || MaxInFlight is not null)
                await _release.Task.WaitAsync(cancellationToken);
            if (prompt.Contains("#hang"))
            {
                yield return Token(id, request.PromptTokenIds[0], request.Sampling);
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            int n = Math.Min(request.Sampling.MaxNewTokens, request.PromptTokenIds.Count);
            for (int i = 0; i < n; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                yield return Token(id, request.PromptTokenIds[i], request.Sampling);
                await Task.Yield();
            }
            var finish = n == request.Sampling.MaxNewTokens && n < request.PromptTokenIds.Count ? FinishReason.Length : FinishReason.Stop;
            yield return new QueryCompleted(id, finish, request.PromptTokenIds.Count, n, Cached: false, Worker: "fake-node/worker-0");
        }
        finally
        {
            Interlocked.Decrement(ref _admitted);
            if (cancellationToken.IsCancellationRequested)
            {
                Interlocked.Increment(ref CancellationsSeen);
                _cancelSeen.TrySetResult();
            }
        }
    }

    private static TokensGenerated Token(string id, int tokenId, SamplingParams sampling)
    {
        string text = tokenId < 256 ? ((char)tokenId).ToString() : "";
        IReadOnlyList<TokenLogprob>? lp = sampling.Logprobs
            ? [new TokenLogprob(tokenId, -0.5f, Enumerable.Range(0, sampling.TopLogprobs).Select(k => new TopLogprob(97 + k, -1f - k)).ToList())]
            : null;
        return new TokensGenerated(id, text, [tokenId], lp);
    }

    public Task<RouterStatus> GetStatusAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var worker = new WorkerStatus
        {
            Worker = "worker-0", Node = "fake-node", State = Ready ? WorkerState.Ready : WorkerState.Loading, Model = "byte-model",
            Running = Active, KvFreeTokens = 900, KvCapacityTokens = 1000,
            Restarts = 2, OomCount = 1, LastOom = DateTimeOffset.Parse("2026-11-27T10:00:00Z"),
        };
        var memory = new MemoryStatus(ResidentBytes: 1_000_000, ManagedBytes: 200_000, TensorBytes: 300_000, DeviceBytes: null,
            LimitBytes: 10_000_000, CleanupMark: 0.5, PauseMark: 0.7, Cleanups: 3, Pauses: 1, Paused: false, At: DateTimeOffset.UtcNow);
        return Task.FromResult(new RouterStatus("fake-node", false, false, Active, 0, MaxInFlight ?? 8, MaxQueue,
            [worker], new CacheStats(1, 100, 5, 7), memory));
    }
}
