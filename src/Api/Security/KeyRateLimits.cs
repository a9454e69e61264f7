using System.Globalization;
using System.Threading.RateLimiting;
using ActorQuery.Api.Errors;

namespace ActorQuery.Api.Security;

/// <summary>
/// Each key's limits on the generation endpoints, kept by System.Threading.RateLimiting with one partition per key:
/// requests per minute and tokens per minute in fixed one-minute windows (the limiter then knows when the window
/// opens again, which becomes Retry-After), and requests running at once. A key's own limits (<see cref="ApiKey.Limits"/>,
/// from its line in a key file) override the settings'; a limit of 0 is no limit.
/// Tokens are each request's max tokens, taken when it is admitted rather than counted as they are generated: that is
/// known before any work, so a key never goes over its limit and is refused before it holds a worker, and a client that
/// wants more requests under the same limit asks for fewer max tokens.
/// </summary>
public sealed class KeyRateLimits : IAsyncDisposable
{
    private readonly SecurityOptions _options;
    private readonly PartitionedRateLimiter<ApiKey> _requests;
    private readonly PartitionedRateLimiter<ApiKey> _tokens;
    private readonly PartitionedRateLimiter<ApiKey> _concurrent;

    public KeyRateLimits(ApiOptions options)
    {
        _options = options.Security;
        _requests = PerMinute(RequestsPerMinute);
        _tokens = PerMinute(TokensPerMinute);
        _concurrent = PartitionedRateLimiter.Create<ApiKey, string>(key => ConcurrentRequests(key) is > 0 and var n
            ? RateLimitPartition.GetConcurrencyLimiter(key.Id, _ => new ConcurrencyLimiterOptions { PermitLimit = n, QueueLimit = 0 })
            : RateLimitPartition.GetNoLimiter(key.Id));
    }

    private int RequestsPerMinute(ApiKey key) => key.Limits?.RequestsPerMinute ?? _options.RequestsPerMinute;
    private int TokensPerMinute(ApiKey key) => key.Limits?.TokensPerMinute ?? _options.TokensPerMinute;
    private int ConcurrentRequests(ApiKey key) => key.Limits?.ConcurrentRequests ?? _options.ConcurrentRequests;

    private static PartitionedRateLimiter<ApiKey> PerMinute(Func<ApiKey, int> permits) =>
        PartitionedRateLimiter.Create<ApiKey, string>(key => permits(key) is > 0 and var n
            // The partitioned limiter's own timer replenishes every partition; no timer per key.
            ? RateLimitPartition.GetFixedWindowLimiter(key.Id,
                _ => new FixedWindowRateLimiterOptions { PermitLimit = n, Window = TimeSpan.FromMinutes(1), QueueLimit = 0, AutoReplenishment = false })
            : RateLimitPartition.GetNoLimiter(key.Id));

    /// <summary>
    /// Admits one generation request of <paramref name="key"/>: its requests-per-minute and concurrency limits. The returned
    /// lease holds the concurrency slot until it is disposed. Throws a 429 <see cref="ApiException"/> naming the limit.
    /// </summary>
    public IDisposable Admit(ApiKey key)
    {
        using (var lease = _requests.AttemptAcquire(key))
            if (!lease.IsAcquired) throw Refused(key, $"{Requests(RequestsPerMinute(key))} per minute", lease);
        var slot = _concurrent.AttemptAcquire(key);
        if (slot.IsAcquired) return slot;
        slot.Dispose();
        throw Refused(key, $"{Requests(ConcurrentRequests(key))} at once", null);
    }

    /// <summary>Takes <paramref name="maxTokens"/> from the key's tokens-per-minute limit; throws 429, or 400 naming
    /// <paramref name="maxField"/> when the request alone is over the limit (it could never be admitted).</summary>
    public void TakeTokens(ApiKey key, int maxTokens, string maxField)
    {
        int limit = TokensPerMinute(key);
        if (limit <= 0) return;
        if (maxTokens > limit)
            throw ApiException.BadRequest(maxField, $"{maxTokens} is over this key's limit of {Count(limit)} tokens per minute; ask for fewer");
        using var lease = _tokens.AttemptAcquire(key, maxTokens);
        if (!lease.IsAcquired) throw Refused(key, $"{Count(limit)} tokens per minute ({maxTokens} asked)", lease);
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
        await _requests.DisposeAsync();
        await _tokens.DisposeAsync();
        await _concurrent.DisposeAsync();
    }
}
