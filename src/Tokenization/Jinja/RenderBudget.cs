using System.Diagnostics;

namespace ActorQuery.Tokenization.Jinja;

/// <summary>
/// What one render has spent of <see cref="JinjaLimits"/>: loop passes and wall-clock time. A render runs on one
/// thread from start to end, so builtins that can do a lot of work in one call (unique) reach it through
/// <see cref="Current"/> instead of a parameter on every filter.
/// </summary>
internal sealed class RenderBudget
{
    [ThreadStatic] private static RenderBudget? _current;

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly TimeSpan _timeBudget;
    private long _iterations;

    private RenderBudget(TimeSpan timeBudget) => _timeBudget = timeBudget;

    /// <summary>The budget of the render running on this thread, if any.</summary>
    public static RenderBudget? Current => _current;

    /// <summary>Starts a render's budget on this thread; disposing it restores the one before (none, or an outer render).</summary>
    public static Scope Start(TimeSpan timeBudget)
    {
        var previous = _current;
        _current = new RenderBudget(timeBudget);
        return new Scope(previous);
    }

    public void CountIteration()
    {
        if (++_iterations > JinjaLimits.MaxLoopIterations)
            throw JinjaTemplate.LimitExceeded($"more than {JinjaLimits.MaxLoopIterations:N0} loop iterations");
        CheckClock();
    }

    public void CheckClock()
    {
        if (_clock.Elapsed > _timeBudget)
            throw JinjaTemplate.LimitExceeded($"rendering took longer than {_timeBudget.TotalSeconds:0.###} s");
    }

    public readonly struct Scope(RenderBudget? previous) : IDisposable
    {
        public void Dispose() => _current = previous;
    }
}
