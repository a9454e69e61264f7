using System.Collections.Concurrent;
using System.Diagnostics;

namespace ActorQuery.Bench.Load;

/// <summary>
/// Closed-loop load: <c>concurrency</c> clients, each sending its next request as soon as its last one ended, until
/// <c>requests</c> were started or the time cap passed (requests already running then finish; none is cut off).
/// </summary>
public static class ClosedLoop
{
    public static async Task<(IReadOnlyList<RequestResult> Results, double WallSeconds)> RunAsync(
        CompletionClient client, int concurrency, int requests, TimeSpan cap, Func<int, LoadRequest> requestAt,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrency, 1);
        var results = new ConcurrentBag<RequestResult>();
        int next = -1;
        var sw = Stopwatch.StartNew();
        async Task Client()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests && sw.Elapsed < cap && !cancellationToken.IsCancellationRequested)
                results.Add(await client.SendAsync(requestAt(i), cancellationToken));
        }
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Client, cancellationToken)));
        return (results.ToList(), sw.Elapsed.TotalSeconds);
    }
}
