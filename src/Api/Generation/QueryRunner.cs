using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using ActorQuery.Actors;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Observability;
using ActorQuery.Contracts;
using Microsoft.AspNetCore.Http;

namespace ActorQuery.Api.Generation;

/// <summary>The answer of a query that completed.</summary>
internal sealed record GenerationResult(string Text, QueryCompleted Completed, IReadOnlyList<int> TokenIds,
    IReadOnlyList<TokenLogprob> Logprobs, TimeSpan Latency);

/// <summary>How one endpoint writes a streamed answer as server-sent events.</summary>
internal interface IStreamShape
{
    IEnumerable<SseItem<string>> Start();
    IEnumerable<SseItem<string>> Chunk(TokensGenerated tokens);
    IEnumerable<SseItem<string>> Final(QueryCompleted completed, TimeSpan latency);
    /// <summary>A query that ended badly after the 200 and the first chunks were sent.</summary>
    IEnumerable<SseItem<string>> Error(ApiException error);
}

/// <summary>
/// Submits a <see cref="GenerationJob"/> through <see cref="IQueryClient"/> and maps its events to HTTP: tokens
/// become text or SSE chunks, the terminal event the answer or an <see cref="ApiException"/> with the status a
/// client expects. The request's abort token is the query's cancellation, so a client that disconnects cancels it.
/// </summary>
internal sealed class QueryRunner(IQueryClient client, ApiMetrics metrics, ApiOptions options, Security.KeyRateLimits limits)
{
    public async Task<GenerationResult> RunAsync(HttpContext context, GenerationJob job)
    {
        var clock = Stopwatch.StartNew();
        var timing = new TokenTiming(metrics, clock, job.ModelName);
        var stats = Begin(context, job);
        var text = new StringBuilder();
        var ids = new List<int>();
        var logprobs = new List<TokenLogprob>();
        try
        {
            await foreach (var ev in client.SubmitAsync(ToQuery(job, buffered: true), context.RequestAborted))
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
    public async Task StreamAsync(HttpContext context, GenerationJob job, IStreamShape shape)
    {
        var clock = Stopwatch.StartNew();
        var stats = Begin(context, job);
        var events = client.SubmitAsync(ToQuery(job, buffered: false), context.RequestAborted).GetAsyncEnumerator(context.RequestAborted);
        try
        {
            if (!await events.MoveNextAsync()) throw NoTerminal(stats);
            var first = events.Current;
            if (first.IsTerminal && first is not QueryCompleted) throw Fail(stats, first, job);
            SlowStreams.Allow(context);
            await TypedResults.ServerSentEvents(Items(first, events, shape, stats, job, clock)).ExecuteAsync(context);
        }
        finally
        {
            metrics.RequestDuration.Observe(clock.Elapsed.TotalSeconds);
            await events.DisposeAsync();
        }
    }

    private async IAsyncEnumerable<SseItem<string>> Items(QueryEvent first, IAsyncEnumerator<QueryEvent> events,
        IStreamShape shape, RequestStats stats, GenerationJob job, Stopwatch clock)
    {
        var timing = new TokenTiming(metrics, clock, job.ModelName);
        foreach (var item in shape.Start()) yield return item;
        var ev = first;
        while (true)
        {
            switch (ev)
            {
                case TokensGenerated t:
                    timing.Observe(t);
                    stats.CompletionTokens = (stats.CompletionTokens ?? 0) + t.TokenIds.Count;
                    foreach (var item in shape.Chunk(t)) yield return item;
                    break;
                case QueryCompleted c:
                    Complete(stats, c);
                    foreach (var item in shape.Final(c, clock.Elapsed)) yield return item;
                    yield break;
                default:
                    foreach (var item in shape.Error(Fail(stats, ev, job))) yield return item;
                    yield break;
            }
            if (!await events.MoveNextAsync())
            {
                foreach (var item in shape.Error(NoTerminal(stats))) yield return item;
                yield break;
            }
            ev = events.Current;
        }
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
