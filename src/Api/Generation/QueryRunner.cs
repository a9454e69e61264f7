using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using ActorQuery.Actors;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Observability;
using ActorQuery.Contracts;
using Microsoft.AspNetCore.Http;

namespace ActorQuery.Api.Generation;

/// <summary>The answer of a query that completed.</summary>
internal sealed record GenerationResult(string Text, QueryCompleted Completed, IReadOnlyList<int> TokenIds,
    IReadOnlyList<TokenLogprob> Logprobs, TimeSpan Latency);

/// <summary>How one endpoint writes a streamed answer of one sequence as server-sent events.</summary>
internal interface IStreamShape
{
    IEnumerable<SseItem<string>> Start();
    IEnumerable<SseItem<string>> Chunk(TokensGenerated tokens);
    IEnumerable<SseItem<string>> Final(QueryCompleted completed, TimeSpan latency);
    /// <summary>A query that ended badly after the 200 and the first chunks were sent.</summary>
    IEnumerable<SseItem<string>> Error(ApiException error);
}

/// <summary>How one endpoint writes the streamed answers of several sequences (OpenAI's choices, by index) as one
/// stream of server-sent events, their chunks interleaved as the sequences produce them.</summary>
internal interface IChoicesStreamShape
{
    IEnumerable<SseItem<string>> Start();
    IEnumerable<SseItem<string>> Chunk(int choice, TokensGenerated tokens);
    /// <summary>One choice's end; the others may still be running.</summary>
    IEnumerable<SseItem<string>> ChoiceDone(int choice, QueryCompleted completed);
    /// <summary>After every choice ended: the completions in choice order.</summary>
    IEnumerable<SseItem<string>> Final(IReadOnlyList<QueryCompleted> completed, TimeSpan latency);
    IEnumerable<SseItem<string>> Error(ApiException error);
}

/// <summary>
/// Submits a <see cref="GenerationJob"/> through <see cref="IQueryClient"/> and maps its events to HTTP: tokens
/// become text or SSE chunks, the terminal event the answer or an <see cref="ApiException"/> with the status a
/// client expects. The request's abort token is the query's cancellation, so a client that disconnects cancels it.
/// Several jobs (OpenAI's <c>n</c>, prompt arrays) run as concurrent queries; the first that fails cancels the others.
/// </summary>
internal sealed class QueryRunner(IQueryClient client, ApiMetrics metrics, ApiOptions options, Security.KeyRateLimits limits)
{
    public Task<GenerationResult> RunAsync(HttpContext context, GenerationJob job) => RunAsync(context, job, context.RequestAborted);

    /// <summary>Runs every job at once (each its own query); the results in job order.</summary>
    public async Task<IReadOnlyList<GenerationResult>> RunAllAsync(HttpContext context, IReadOnlyList<GenerationJob> jobs)
    {
        if (jobs.Count == 1) return [await RunAsync(context, jobs[0])];
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var tasks = jobs.Select(j => RunAsync(context, j, cts.Token)).ToList();
        var pending = new List<Task<GenerationResult>>(tasks);
        while (pending.Count > 0)
        {
            var done = await Task.WhenAny(pending);
            pending.Remove(done);
            if (done.IsCompletedSuccessfully) continue;
            // One refused or failed: the request fails as a whole, so its siblings are cancelled rather than left running.
            cts.Cancel();
            try { await Task.WhenAll(pending); } catch { /* the first failure is the answer */ }
            await done;
        }
        var results = tasks.Select(t => t.Result).ToList();
        var stats = RequestStats.For(context);
        stats.CompletionTokens = results.Sum(r => r.Completed.CompletionTokens);
        stats.PromptTokens = results.Sum(r => r.Completed.PromptTokens);
        return results;
    }

    private async Task<GenerationResult> RunAsync(HttpContext context, GenerationJob job, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var timing = new TokenTiming(metrics, clock, job.ModelName);
        var stats = Begin(context, job);
        var text = new StringBuilder();
        var ids = new List<int>();
        var logprobs = new List<TokenLogprob>();
        try
        {
            await foreach (var ev in client.SubmitAsync(ToQuery(job, buffered: true), cancellationToken))
            {
                switch (ev)
                {
                    case TokensGenerated t:
                        timing.Observe(t);
                        stats.CompletionTokens = (stats.CompletionTokens ?? 0) + t.TokenIds.Count;
                        text.Append(t.Text);
                        ids.AddRange(t.TokenIds);
                        if (t.Logprobs is not null) logprobs.AddRange(t.Logprobs);
                        break;
                    case QueryCompleted c:
                        Complete(stats, c);
                        return new GenerationResult(text.ToString(), c, ids, logprobs, clock.Elapsed);
                    default:
                        throw Fail(stats, ev, job);
                }
            }
            throw NoTerminal(stats);
        }
        finally { metrics.RequestDuration.Observe(clock.Elapsed.TotalSeconds); }
    }

    /// <summary>
    /// Streams a query as SSE. The first event is awaited before the 200 goes out, so that a refusal still gets its
    /// own status (429/503/413) rather than an error inside a 200 stream.
    /// </summary>
    public Task StreamAsync(HttpContext context, GenerationJob job, IStreamShape shape) =>
        StreamAllAsync(context, [job], new OneChoice(shape));

    /// <summary>Streams every job at once as one SSE response. The first event of each is awaited before the 200 goes
    /// out, so that a refusal of any gets its own status; a later failure of one ends the stream with the error.</summary>
    public async Task StreamAllAsync(HttpContext context, IReadOnlyList<GenerationJob> jobs, IChoicesStreamShape shape)
    {
        var clock = Stopwatch.StartNew();
        // One request's stats: every job counts against the key's limits and in the metrics.
        var stats = RequestStats.For(context);
        foreach (var job in jobs) stats = Begin(context, job);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var events = jobs.Select(j => client.SubmitAsync(ToQuery(j, buffered: false), cts.Token).GetAsyncEnumerator(cts.Token)).ToArray();
        var moves = events.Select(e => e.MoveNextAsync().AsTask()).ToArray();
        var pumps = new List<Task>();
        try
        {
            var firsts = new QueryEvent[jobs.Count];
            // By index: reads that completed at once may share one cached task.
            var pending = Enumerable.Range(0, jobs.Count).ToList();
            while (pending.Count > 0)
            {
                await Task.WhenAny(pending.Select(i => moves[i]));
                foreach (int i in pending.Where(i => moves[i].IsCompleted).ToList())
                {
                    pending.Remove(i);
                    if (!await moves[i]) throw NoTerminal(stats);
                    firsts[i] = events[i].Current;
                    if (firsts[i].IsTerminal && firsts[i] is not QueryCompleted) throw Fail(stats, firsts[i], jobs[i]);
                }
            }
            var merged = Channel.CreateUnbounded<(int Choice, QueryEvent Event)>();
            for (int i = 0; i < jobs.Count; i++) pumps.Add(Pump(i, firsts[i], events[i], merged.Writer, cts.Token));
            _ = Task.WhenAll(pumps).ContinueWith(_ => merged.Writer.TryComplete(), TaskScheduler.Default);
            SlowStreams.Allow(context);
            await TypedResults.ServerSentEvents(Items(merged.Reader, jobs, shape, stats, clock, cts.Token)).ExecuteAsync(context);
        }
        finally
        {
            metrics.RequestDuration.Observe(clock.Elapsed.TotalSeconds);
            // Queries still running (a sibling failed, the client left) are cancelled; an enumerator is disposed only
            // once its pending read has ended.
            cts.Cancel();
            foreach (var t in moves.Concat(pumps)) { try { await t; } catch { /* cancelled or failed: the answer went out */ } }
            foreach (var e in events) await e.DisposeAsync();
        }
    }

    /// <summary>One query's events into the merged stream, until its terminal event.</summary>
    private static async Task Pump(int choice, QueryEvent first, IAsyncEnumerator<QueryEvent> events,
        ChannelWriter<(int, QueryEvent)> merged, CancellationToken cancellationToken)
    {
        var ev = first;
        while (true)
        {
            await merged.WriteAsync((choice, ev), cancellationToken);
            if (ev.IsTerminal) return;
            if (!await events.MoveNextAsync()) return;
            ev = events.Current;
        }
    }

    private async IAsyncEnumerable<SseItem<string>> Items(ChannelReader<(int Choice, QueryEvent Event)> merged,
        IReadOnlyList<GenerationJob> jobs, IChoicesStreamShape shape, RequestStats stats, Stopwatch clock,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var timings = jobs.Select(j => new TokenTiming(metrics, clock, j.ModelName)).ToArray();
        var completed = new QueryCompleted?[jobs.Count];
        int open = jobs.Count, completionTokens = 0;
        foreach (var item in shape.Start()) yield return item;
        while (open > 0)
        {
            if (!await merged.WaitToReadAsync(cancellationToken))
            {
                foreach (var item in shape.Error(NoTerminal(stats))) yield return item;
                yield break;
            }
            if (!merged.TryRead(out var next)) continue;
            var (i, ev) = next;
            switch (ev)
            {
                case TokensGenerated t:
                    timings[i].Observe(t);
                    stats.CompletionTokens = (stats.CompletionTokens ?? 0) + t.TokenIds.Count;
                    foreach (var item in shape.Chunk(i, t)) yield return item;
                    break;
                case QueryCompleted c:
                    completed[i] = c;
                    completionTokens += c.CompletionTokens;
                    open--;
                    foreach (var item in shape.ChoiceDone(i, c)) yield return item;
                    break;
                default:
                    foreach (var item in shape.Error(Fail(stats, ev, jobs[i]))) yield return item;
                    yield break;
            }
        }
        Complete(stats, completed[^1]!);
        stats.CompletionTokens = completionTokens;
        stats.PromptTokens = completed.Sum(c => c!.PromptTokens);
        foreach (var item in shape.Final(completed.Select(c => c!).ToList(), clock.Elapsed)) yield return item;
    }

    /// <summary>A one-sequence shape as a shape of one choice.</summary>
    private sealed class OneChoice(IStreamShape shape) : IChoicesStreamShape
    {
        public IEnumerable<SseItem<string>> Start() => shape.Start();
        public IEnumerable<SseItem<string>> Chunk(int choice, TokensGenerated tokens) => shape.Chunk(tokens);
        public IEnumerable<SseItem<string>> ChoiceDone(int choice, QueryCompleted completed) => [];
        public IEnumerable<SseItem<string>> Final(IReadOnlyList<QueryCompleted> completed, TimeSpan latency) => shape.Final(completed[0], latency);
        public IEnumerable<SseItem<string>> Error(ApiException error) => shape.Error(error);
    }

    private RequestStats Begin(HttpContext context, GenerationJob job)
    {
        if (Security.ApiKey.Of(context) is { } key) limits.TakeTokens(key, job.Sampling.MaxNewTokens, job.MaxTokensField);
        var stats = RequestStats.For(context);
        stats.PromptTokens = job.PromptIds.Count;
        metrics.PromptTokens.Inc(job.PromptIds.Count);
        var model = job.ModelName ?? "";
        metrics.ModelRequests.WithLabels(model).Inc();
        metrics.ModelTokens.WithLabels(model, "prompt").Inc(job.PromptIds.Count);
        return stats;
    }

    private void Complete(RequestStats stats, QueryCompleted c)
    {
        metrics.CachedPromptTokens.Inc(c.CachedPromptTokens);
        stats.Worker = c.Worker;
        stats.Cached = c.Cached;
        stats.FinishReason = FinishReasonText(c.FinishReason);
        stats.CompletionTokens = c.CompletionTokens;
        stats.PromptTokens = c.PromptTokens;
        stats.Outcome = "completed";
    }

    /// <param name="buffered">True for a non-streamed answer: the router may then retry it even after tokens.</param>
    private static QueryRequest ToQuery(GenerationJob job, bool buffered) => new()
    {
        Buffered = buffered,
        QueryId = job.RequestId,
        PromptTokenIds = job.PromptIds,
        Sampling = job.Sampling,
        StopStrings = job.Stop,
        Timeout = job.Timeout,
        Model = job.Model,
        KeepAlive = job.KeepAlive,
        AffinityKey = job.AffinityKey,
    };

    public static string FinishReasonText(FinishReason reason) => reason == FinishReason.Length ? "length" : "stop";

    private static ApiException NoTerminal(RequestStats stats)
    {
        stats.Outcome = "failed";
        return new ApiException(500, null, "the query ended without an answer", "internal_error");
    }

    /// <summary>The HTTP answer to a terminal event that is not a completion.</summary>
    private ApiException Fail(RequestStats stats, QueryEvent ev, GenerationJob job)
    {
        switch (ev)
        {
            case QueryRefused r:
                stats.Outcome = "refused:" + r.Reason;
                metrics.Refused.WithLabels(r.Reason.ToString()).Inc();
                return r.Reason switch
                {
                    RefusalReason.QueueFull => new ApiException(429, null, Say(r.Message, "the queue is full; retry later"),
                        "queue_full", r.RetryAfter ?? options.DefaultRetryAfter),
                    RefusalReason.NoModelReady => new ApiException(503, null, Say(r.Message, "no model is ready"),
                        "no_model_ready", r.RetryAfter),
                    RefusalReason.MemoryPressure => new ApiException(503, null, Say(r.Message, "the server is short of memory"),
                        "memory_pressure", r.RetryAfter ?? options.DefaultRetryAfter),
                    RefusalReason.ShuttingDown => new ApiException(503, null, Say(r.Message, "the server is shutting down"),
                        "shutting_down", r.RetryAfter),
                    RefusalReason.TooLarge => new ApiException(413, job.MaxTokensField,
                        $"{job.MaxTokensField}: {Say(r.Message, "prompt plus new tokens do not fit the model's memory")}", "context_length_exceeded"),
                    _ => new ApiException(400, null, Say(r.Message, "the request was refused as invalid"), "invalid_request"),
                };
            case QueryTimedOut t:
                stats.Outcome = "timed_out";
                return new ApiException(504, null, $"the query's deadline of {t.Deadline.TotalSeconds:0.###} s passed", "deadline_exceeded");
            case QueryFailed f:
                stats.Outcome = "failed";
                return new ApiException(500, null, $"the model failed: {f.Reason}", "model_failed");
            case QueryCancelled:
                stats.Outcome = "cancelled";
                return new ApiException(503, null, "the query was cancelled by the server before it finished", "cancelled");
            default:
                stats.Outcome = "failed";
                return new ApiException(500, null, $"unexpected event {ev.GetType().Name}", "internal_error");
        }
    }

    private static string Say(string? message, string fallback) => string.IsNullOrWhiteSpace(message) ? fallback : message;

    /// <summary>Time to first token and between tokens, in the metrics and the dashboard's per-second series.</summary>
    private sealed class TokenTiming(ApiMetrics metrics, Stopwatch clock, string? model)
    {
        private TimeSpan? _last;

        public void Observe(TokensGenerated t)
        {
            if (t.TokenIds.Count == 0) return;
            var now = clock.Elapsed;
            if (_last is null)
            {
                metrics.TimeToFirstToken.Observe(now.TotalSeconds);
                metrics.Seconds.Record(t.TokenIds.Count, firstToken: now);
            }
            else
            {
                var perToken = (now - _last.Value) / t.TokenIds.Count;
                metrics.InterTokenLatency.Observe(perToken.TotalSeconds);
                metrics.Seconds.Record(t.TokenIds.Count, interToken: perToken);
            }
            _last = now;
            metrics.GeneratedTokens.Inc(t.TokenIds.Count);
            metrics.ModelTokens.WithLabels(model ?? "", "generated").Inc(t.TokenIds.Count);
        }
    }
}
