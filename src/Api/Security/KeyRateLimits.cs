using System.Globalization;
using System.Threading.RateLimiting;
using ActorQuery.Api.Errors;

namespace ActorQuery.Api.Security;

/// <summary>
/// Each key's limits on the generation endpoints, kept by System.Threading.RateLimiting with one partition per key:
/// requests per minute and tokens per minute in fixed one-minute windows (the limiter then knows when the window
/// opens again, which becomes Retry-After), and requests running at once. A limit of 0 is no limiter at all.
/// Tokens are each request's max tokens, taken when it is admitted rather than counted as they are generated: that is
/// known before any work, so a key never goes over its limit and is refused before it holds a worker, and a client that
/// wants more requests under the same limit asks for fewer max tokens.
/// </summary>
public sealed class KeyRateLimits : IAsyncDisposable
{
    private readonly SecurityOptions _options;
    private readonly PartitionedRateLimiter<string>? _requests;
    private readonly PartitionedRateLimiter<string>? _tokens;
    private readonly PartitionedRateLimiter<string>? _concurrent;

    public KeyRateLimits(ApiOptions options)
    {
        _options = options.Security;
        if (_options.RequestsPerMinute > 0) _requests = PerMinute(_options.RequestsPerMinute);
        if (_options.TokensPerMinute > 0) _tokens = PerMinute(_options.TokensPerMinute);
        if (_options.ConcurrentRequests > 0)
            _concurrent = PartitionedRateLimiter.Create<string, string>(id => RateLimitPartition.GetConcurrencyLimiter(id,
                _ => new ConcurrencyLimiterOptions { PermitLimit = _options.ConcurrentRequests, QueueLimit = 0 }));
    }

    private static PartitionedRateLimiter<string> PerMinute(int permits) =>
        PartitionedRateLimiter.Create<string, string>(id => RateLimitPartition.GetFixedWindowLimiter(id,
            // The partitioned limiter's own timer replenishes every partition; no timer per key.
            _ => new FixedWindowRateLimiterOptions { PermitLimit = permits, Window = TimeSpan.FromMinutes(1), QueueLimit = 0, AutoReplenishment = false }));

    /// <summary>
    /// Admits one generation request of <paramref name="key"/>: its requests-per-minute and concurrency limits. The returned
    /// lease holds the concurrency slot until it is disposed. Throws a 429 <see cref="ApiException"/> naming the limit.
    /// </summary>
    public IDisposable Admit(ApiKey key)
    {
        if (_requests is not null)
        {
            using var lease = _requests.AttemptAcquire(key.Id);
            if (!lease.IsAcquired) throw Refused(key, $"{Requests(_options.RequestsPerMinute)} per minute", lease);
        }
        if (_concurrent is null) return NoLease.Instance;
        var slot = _concurrent.AttemptAcquire(key.Id);
        if (slot.IsAcquired) return slot;
        slot.Dispose();
        throw Refused(key, $"{Requests(_options.ConcurrentRequests)} at once", null);
    }

    /// <summary>Takes <paramref name="maxTokens"/> from the key's tokens-per-minute limit; throws 429, or 400 naming
    /// <paramref name="maxField"/> when the request alone is over the limit (it could never be admitted).</summary>
    public void TakeTokens(ApiKey key, int maxTokens, string maxField)
    {
        if (_tokens is null) return;
        if (maxTokens > _options.TokensPerMinute)
            throw ApiException.BadRequest(maxField, $"{maxTokens} is over this key's limit of {Count(_options.TokensPerMinute)} tokens per minute; ask for fewer");
        using var lease = _tokens.AttemptAcquire(key.Id, maxTokens);
        if (!lease.IsAcquired) throw Refused(key, $"{Count(_options.TokensPerMinute)} tokens per minute ({maxTokens} asked)", lease);
    }

    private ApiException Refused(ApiKey key, string limit, RateLimitLease? lease)
    {
        var retry = lease is not null && lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : _options.ConcurrencyRetryAfter;
        int seconds = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds));
        return new ApiException(429, null, $"API key '{key.Label}' is over its limit of {limit}; retry in {seconds} s",
            "rate_limit_exceeded", TimeSpan.FromSeconds(seconds));
    }

    private static string Requests(int n) => n == 1 ? "1 request" : $"{Count(n)} requests";

    private static string Count(int n) => n.ToString("N0", CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        if (_requests is not null) await _requests.DisposeAsync();
        if (_tokens is not null) await _tokens.DisposeAsync();
        if (_concurrent is not null) await _concurrent.DisposeAsync();
    }

    private sealed class NoLease : IDisposable
    {
        public static readonly NoLease Instance = new();
        public void Dispose() { }
    }
}
