using System.Diagnostics;

namespace ActorQuery.TestSupport;

/// <summary>
/// Waits for something that another thread makes happen (an actor, a server, a background task): polls a
/// condition until it holds and, once the deadline has passed, throws a <see cref="TimeoutException"/> that names
/// what did not happen, how long it waited and, if asked, what it saw last. Never a fixed sleep, never a silent
/// fall-through. Actor specs use TestKit's <c>ExpectMsg</c>/<c>AwaitCondition</c>/<c>AwaitAssert</c> instead.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(10);

    /// <param name="what">what is awaited, read after "waiting for": "the query to reach the fake router".</param>
    /// <param name="seen">what there was instead, asked once at the timeout for the failure message.</param>
    /// <param name="interval">the pause between two checks (10 ms unless given).</param>
    public static Task Until(Func<bool> condition, TimeSpan timeout, string what, Func<string>? seen = null, TimeSpan? interval = null) =>
        Until(() => Task.FromResult(condition()), timeout, what, seen, interval);

    /// <inheritdoc cref="Until(Func{bool}, TimeSpan, string, Func{string}?, TimeSpan?)"/>
    public static async Task Until(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<string>? seen = null, TimeSpan? interval = null) =>
        await Until(condition, done => done, timeout, what, seen is null ? null : _ => seen(), interval);

    /// <summary>Reads <paramref name="probe"/> until <paramref name="done"/> holds for what it read, and returns that.</summary>
    /// <param name="seen">describes the last reading for the failure message.</param>
    public static async Task<T> Until<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan timeout, string what,
        Func<T, string>? seen = null, TimeSpan? interval = null)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var value = await probe();
            if (done(value)) return value;
            if (clock.Elapsed >= timeout)
                throw new TimeoutException($"Gave up after {clock.Elapsed.TotalSeconds:0.0} s (limit {timeout.TotalSeconds:0.#} s) waiting for {what}"
                                           + (seen is null ? "." : $"; last seen: {seen(value)}."));
            await Task.Delay(interval ?? DefaultInterval);
        }
    }
}
