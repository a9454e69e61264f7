using System.Diagnostics;

namespace ActorQuery.Inference.Model;

/// <summary>
/// The threads that run one kernel call together (<see cref="SmallBatchGemm"/>, <see cref="PagedAttention"/>,
/// <see cref="CpuLayerOps.SiluMul"/>): the calling thread and <c>threads - 1</c> workers of its own, which take
/// chunks of the call's work from a shared counter.
/// <para>
/// Written by hand instead of <c>Parallel.For</c>, which cost 1.3–1.5× the wall time on the 0.5B shape
/// (2 cores; 16 rows: 248–256 against 329–349 ms per step's projections; 1 row: 98–109 against 162–163 ms).
/// A step makes ~100 calls of 0.5–10 ms each: <c>Parallel.For</c> queued a task per call for a thread-pool thread
/// that first had to wake, and split the columns into fixed halves, so the caller finished its half and then idled
/// while the late worker did the other. Here a worker spins for a short while after each call (the next projection
/// of a step follows within a millisecond) and then sleeps, and the columns go
/// in small chunks to whichever thread is free, so a late start costs one chunk, not half the call.
/// </para>
/// <para>
/// One call at a time: a second thread's call while one runs does its chunks alone (engines are stepped by one
/// actor each, so that only happens when a tool scores beside a running step). Which thread computes a chunk does
/// not change its values.
/// </para>
/// </summary>
internal sealed class GemmTeam : IDisposable
{
    /// <summary>How long a worker spins for the next call before it sleeps.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 500; // 2 ms

    private readonly Thread[] _workers;
    private readonly SemaphoreSlim[] _wake;
    private readonly int[] _sleeping;
    private readonly object _busy = new();
    private volatile int _generation;
    private volatile bool _stopping;
    private int _next, _count, _pending;
    private Action<int>? _body;
    private Exception? _failure;

    public int Threads => _workers.Length + 1;

    public GemmTeam(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "must be >= 1");
        _workers = new Thread[threads - 1];
        _wake = new SemaphoreSlim[threads - 1];
        _sleeping = new int[threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            int id = i;
            _wake[i] = new SemaphoreSlim(0);
            _workers[i] = new Thread(() => Loop(id)) { IsBackground = true, Name = $"actorquery-gemm-{id + 1}" };
            _workers[i].Start();
        }
    }

    /// <summary>Runs <paramref name="body"/>(0..count-1), each index once, on <paramref name="team"/>, or on the calling
    /// thread alone when there is no team; returns when all are done.</summary>
    public static void Run(GemmTeam? team, int count, Action<int> body)
    {
        if (team is null) for (int c = 0; c < count; c++) body(c);
        else team.Run(count, body);
    }

    /// <summary>Runs <paramref name="body"/>(0..count-1), each index once, on the team; returns when all are done.</summary>
    public void Run(int count, Action<int> body)
    {
        if (_workers.Length == 0 || count <= 1 || !Monitor.TryEnter(_busy))
        {
            for (int c = 0; c < count; c++) body(c);
            return;
        }
        try
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            _body = body;
            _count = count;
            _next = 0;
            _failure = null;
            _pending = _workers.Length;
            Interlocked.Increment(ref _generation);                    // a full fence: publishes the fields above
            for (int i = 0; i < _workers.Length; i++)
                if (Volatile.Read(ref _sleeping[i]) == 1) _wake[i].Release();
            try { Work(); }
            finally
            {
                // Even when this thread's chunk threw: the workers still read the caller's buffers until they finish.
                Interlocked.Exchange(ref _next, int.MaxValue / 2);
                var spin = new SpinWait();
                while (Volatile.Read(ref _pending) > 0) spin.SpinOnce(sleep1Threshold: -1);
                _body = null;
            }
            if (_failure is { } e) throw new AggregateException("a kernel thread failed", e);
        }
        finally { Monitor.Exit(_busy); }
    }

    private void Work()
    {
        var body = _body!;
        int count = _count;
        for (int c; (c = Interlocked.Increment(ref _next) - 1) < count;) body(c);
    }

    private void Loop(int id)
    {
        int seen = 0;
        while (true)
        {
            long spinUntil = Stopwatch.GetTimestamp() + SpinTicks;
            while (_generation == seen && !_stopping)
            {
                // Yield while spinning: on a machine with as many threads busy as cores, the HTTP and actor threads
                // that run between steps get the core at once instead of after the spinner's time slice.
                if (Stopwatch.GetTimestamp() < spinUntil) { Thread.Yield(); continue; }
                // Say we sleep, then look once more: Run either sees the flag and wakes us, or we see its new
                // generation (both sides fence). The timeout is a second guard, not the mechanism.
                Interlocked.Exchange(ref _sleeping[id], 1);
                bool woken = _generation == seen && !_stopping && _wake[id].Wait(100);
                Interlocked.Exchange(ref _sleeping[id], 0);
                // Spin again only when woken for work; after the guard's timeout an idle server would otherwise spin
                // 2 ms of every 100 (2% of a core per kernel thread, measured).
                spinUntil = woken ? Stopwatch.GetTimestamp() + SpinTicks : 0;
            }
            if (_stopping) return;
            seen = _generation;
            try { Work(); }
            catch (Exception e) { _failure = e; Interlocked.Exchange(ref _next, int.MaxValue / 2); }
            Interlocked.Decrement(ref _pending);
        }
    }

    public void Dispose()
    {
        if (_stopping) return;
        lock (_busy)
        {
            _stopping = true;
            foreach (var w in _wake) w.Release();
        }
        foreach (var t in _workers) t.Join();
        foreach (var w in _wake) w.Dispose();
    }
}
