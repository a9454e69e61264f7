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
    /// <summary>Admission paused by memory pressure, as the router reports it (<see cref="RouterStatus.Paused"/>); queries still run.</summary>
    public bool Paused { get; set; }
    /// <summary>The worker failed for good with this error (state Failed); null: as <see cref="Ready"/> says.</summary>
    public string? FailedWith { get; set; }
    public string? PauseReason { get; set; }
    /// <summary>The watchdog's reading in the status; null: the watchdog is off.</summary>
    public MemoryStatus? Memory { get; set; } = DefaultMemory;
    /// <summary>worker-0's engine memory in the status.</summary>
    public EngineMemory? WorkerMemory { get; set; } = DefaultWorkerMemory;
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

    /// <summary>Whether the API told the router to drain (SIGTERM).</summary>
    public bool DrainingStarted { get; private set; }
    private readonly TaskCompletionSource<string> _abort = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task StartDrainingAsync(CancellationToken cancellationToken)
    {
        DrainingStarted = true;
        return Task.CompletedTask;
    }

    /// <summary>Ends the held (#hang) queries with a shutting-down refusal, as the router's AbortAll does.</summary>
    public Task AbortAllAsync(string reason, CancellationToken cancellationToken)
    {
        _abort.TrySetResult(reason);
        return Task.CompletedTask;
    }

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
                await Task.WhenAny(Task.Delay(Timeout.Infinite, cancellationToken), _abort.Task);
                cancellationToken.ThrowIfCancellationRequested();
                yield return new QueryRefused(id, RefusalReason.ShuttingDown, await _abort.Task, TimeSpan.FromSeconds(10));
                yield break;
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

    /// <summary>A loaded worker on the CPU: 300 KB of weights, 10 KB load overhead, 40 KB activations, a 1000-token KV pool
    /// of 100 bytes a token with 120 tokens in use.</summary>
    public static readonly EngineMemory DefaultWorkerMemory = new(WeightBytes: 300_000, KvCacheBytes: 100_000)
    {
        KvUsedBytes = 12_000, ActivationPeakBytes = 40_000, LoadOverheadBytes = 10_000, KvBytesPerToken = 100,
    };

    /// <summary>A reading of a node with <see cref="DefaultWorkerMemory"/>: a 10 MB physical limit, 500 KB runtime, and the
    /// marks at 0.5, 0.8 and 0.95 of the headroom the 950 KB plan leaves.</summary>
    public static readonly MemoryStatus DefaultMemory = new()
    {
        LimitBytes = 10_000_000, LimitSource = "physical memory", Utilization = 0.9, BudgetBytes = 8_500_000, HeldBytes = 500_000,
        WeightBytes = 300_000, LoadOverheadBytes = 10_000, ActivationPeakBytes = 40_000, KvCacheBytes = 100_000, KvUsedBytes = 12_000,
        PlannedBytes = 950_000,
        ResidentBytes = 1_000_000, ManagedBytes = 200_000,
        CleanupMark = 0.5, PauseMark = 0.8, ShedMark = 0.95,
        CleanupAtBytes = 5_475_000, PauseAtBytes = 8_190_000, ShedAtBytes = 9_547_500,
        State = MemoryState.Normal, Cleanups = 3, Pauses = 1, Sheds = 2, ReadEvery = TimeSpan.FromSeconds(5),
        At = DateTimeOffset.Parse("2026-11-27T10:05:00Z"),
    };

    public Task<RouterStatus> GetStatusAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var worker = new WorkerStatus
        {
            Worker = "worker-0", Node = "fake-node", State = FailedWith is not null ? WorkerState.Failed : Ready ? WorkerState.Ready : WorkerState.Loading,
            Error = FailedWith, Model = "byte-model",
            Device = "cpu", Running = Active, KvFreeTokens = 880, KvCapacityTokens = 1000, KvBlockSize = 16, Memory = WorkerMemory,
            MemoryPressure = Paused ? PauseReason : null,
            Restarts = 2, OomCount = 1, LastOom = DateTimeOffset.Parse("2026-11-27T10:00:00Z"),
        };
        return Task.FromResult(new RouterStatus("fake-node", Paused, false, Active, 0, MaxInFlight ?? 8, MaxQueue,
            [worker], new CacheStats(1, 100, 5, 7), Memory, PauseReason: Paused ? PauseReason : null));
    }
}
