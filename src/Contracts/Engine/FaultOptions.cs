namespace ActorQuery.Contracts;

/// <summary>
/// Faults to inject for tests and chaos runs (configuration section <c>ActorQuery:Faults</c>, e.g.
/// <c>ACTORQUERY__FAULTS__OOMEVERYNTHSTEP=40</c>). Everything is off by default.
/// </summary>
public sealed record FaultOptions
{
    /// <summary>Every Nth engine step (counted across restarts of the worker) raises an out-of-memory; 0 = never.</summary>
    public int OomEveryNthStep { get; init; }

    /// <summary>The first N load attempts of each worker fail with an out-of-memory; 0 = never.</summary>
    public int OomOnLoadAttempts { get; init; }

    /// <summary>Every Nth engine step raises a non-OOM exception (a crash); 0 = never.</summary>
    public int CrashEveryNthStep { get; init; }

    /// <summary>Each step sleeps this long first (simulates a slow model); 0 = no delay.</summary>
    public int StepDelayMs { get; init; }

    /// <summary>The engine step with this 1-based number (counted across restarts within one process) never returns
    /// (a hung native call: a driver, a deadlock); 0 = never. It is released when the fault state is disposed (specs) or the
    /// hang is disarmed (POST /admin/faults).</summary>
    public int HangAtStep { get; init; }

    /// <summary>Exact 1-based step numbers (counted across restarts) that raise an out-of-memory; for deterministic specs.</summary>
    public IReadOnlyList<int> OomAtSteps { get; init; } = Array.Empty<int>();

    /// <summary>Each engine step allocates this many bytes of native memory, writes them and holds them (a leak), so
    /// that the memory watchdog's path runs for real; 0 = off, and setting it back to 0 frees what the leak holds. The
    /// server applies a change of it live (<see cref="FaultState.LeakBytesPerStep"/>).</summary>
    public long LeakBytesPerStep { get; init; }

    /// <summary>The most <see cref="LeakBytesPerStep"/> may be, in the settings and in POST /admin/faults.</summary>
    public const long MaxLeakBytesPerStep = 1L << 30;

    /// <summary>The step faults that can also be changed while the server runs (<see cref="FaultState.Arm"/>).</summary>
    public LiveFaults Live => new()
    {
        LeakBytesPerStep = LeakBytesPerStep, StepDelayMs = StepDelayMs, OomEveryNthStep = OomEveryNthStep,
        CrashEveryNthStep = CrashEveryNthStep, HangAtStep = HangAtStep,
    };

    public bool Enabled => OomEveryNthStep > 0 || OomOnLoadAttempts > 0 || CrashEveryNthStep > 0 || StepDelayMs > 0
                           || OomAtSteps.Count > 0 || LeakBytesPerStep > 0 || HangAtStep > 0;
}

/// <summary>The step faults armed in one worker now, from its settings at start and then from POST /admin/faults. Each
/// field is off at 0; <see cref="HangAtStep"/> is the worker's step number (<see cref="FaultState.Steps"/>) that hangs.</summary>
public sealed record LiveFaults
{
    public static readonly LiveFaults None = new();

    public long LeakBytesPerStep { get; init; }
    public int StepDelayMs { get; init; }
    public int OomEveryNthStep { get; init; }
    public int CrashEveryNthStep { get; init; }
    public int HangAtStep { get; init; }

    public bool Armed => LeakBytesPerStep > 0 || StepDelayMs > 0 || OomEveryNthStep > 0 || CrashEveryNthStep > 0 || HangAtStep > 0;

    /// <summary>For logs: "leak 4 MiB per step, step delay 100 ms", or "none".</summary>
    /// <param name="hangFromNow">The hang is a count of steps from now (as armed), not a step number.</param>
    public string Describe(bool hangFromNow = false) => !Armed ? "none" : string.Join(", ", new[]
    {
        LeakBytesPerStep > 0 ? $"leak {MemorySize.Format(LeakBytesPerStep)} per step" : null,
        StepDelayMs > 0 ? $"step delay {StepDelayMs} ms" : null,
        OomEveryNthStep > 0 ? $"out of memory every {OomEveryNthStep} steps" : null,
        CrashEveryNthStep > 0 ? $"crash every {CrashEveryNthStep} steps" : null,
        HangAtStep > 0 ? (hangFromNow ? $"hang {HangAtStep} steps from now" : $"hang at step {HangAtStep}") : null,
    }.OfType<string>());
}

/// <summary>
/// Counters that outlive one engine: a restarted worker gets a fresh engine, but the fault schedule goes on
/// (otherwise "every 40th step" would hit the same step of every incarnation forever). Thread-safe.
/// </summary>
public sealed class FaultState : IDisposable
{
    private long _steps;
    private long _loads;
    private LiveFaults _live;
    private readonly List<nint> _leaked = new();
    private readonly object _leakGate = new();

    public FaultState() : this(LiveFaults.None) { }

    /// <param name="armed">The faults armed from the start (<see cref="FaultOptions.Live"/>); a hang counts from step 1.</param>
    public FaultState(LiveFaults armed) => _live = Checked(armed);

    /// <summary>The step faults armed now; the engine reads them at every step.</summary>
    public LiveFaults Live => Volatile.Read(ref _live);

    /// <summary>
    /// Arms <paramref name="faults"/> in place of those armed (a field at 0 disarms it) and returns what is armed now.
    /// A hang is armed <paramref name="faults"/>.HangAtStep steps from now (the step counter runs across restarts, so an
    /// absolute step number means nothing to whoever arms it); disarming it lets a hung step return. Disarming the leak
    /// frees what it holds.
    /// </summary>
    public LiveFaults Arm(LiveFaults faults)
    {
        var live = Checked(faults) with { HangAtStep = faults.HangAtStep > 0 ? (int)Math.Min(int.MaxValue, Steps + faults.HangAtStep) : 0 };
        Set(live);
        return live;
    }

    /// <summary>The leak fault as armed now (<see cref="FaultOptions.LeakBytesPerStep"/>); set it live, 0 disarms and frees it.</summary>
    public long LeakBytesPerStep
    {
        get => Live.LeakBytesPerStep;
        set => Set(Live with { LeakBytesPerStep = Math.Max(0, value) });
    }

    private static LiveFaults Checked(LiveFaults f) => f with
    {
        LeakBytesPerStep = Math.Max(0, f.LeakBytesPerStep), StepDelayMs = Math.Max(0, f.StepDelayMs),
        OomEveryNthStep = Math.Max(0, f.OomEveryNthStep), CrashEveryNthStep = Math.Max(0, f.CrashEveryNthStep), HangAtStep = Math.Max(0, f.HangAtStep),
    };

    private void Set(LiveFaults live)
    {
        var before = Interlocked.Exchange(ref _live, live);
        if (live.LeakBytesPerStep <= 0) lock (_leakGate) FreeLeak();
        if (live.HangAtStep > 0 && live.HangAtStep != before.HangAtStep) _hang.Reset();
        else if (live.HangAtStep == 0 && before.HangAtStep > 0) _hang.Set();
    }

    /// <summary>Bytes the leak holds now.</summary>
    public long LeakedBytes { get; private set; }

    /// <summary>One step's leak: allocates and writes <see cref="LeakBytesPerStep"/> bytes and holds them (disarming
    /// frees them).</summary>
    public void LeakStep()
    {
        long n = LeakBytesPerStep;
        if (n <= 0) return;
        lock (_leakGate)
        {
            unsafe
            {
                var p = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)n);
                // Written page by page, so that the pages are resident and charged, not just reserved.
                for (long i = 0; i < n; i += 4096) p[i] = 1;
                _leaked.Add((nint)p);
            }
            LeakedBytes += n;
        }
    }

    private void FreeLeak()
    {
        unsafe { foreach (var p in _leaked) System.Runtime.InteropServices.NativeMemory.Free((void*)p); }
        _leaked.Clear();
        LeakedBytes = 0;
    }

    public void Dispose()
    {
        lock (_leakGate) FreeLeak();
        ReleaseHang();
    }

    private readonly ManualResetEventSlim _hang = new(false);

    /// <summary>Blocks the calling step until <see cref="ReleaseHang"/> (the hung-step fault).</summary>
    public void Hang() => _hang.Wait();

    /// <summary>Lets a hung step return (specs end with it, so that no thread stays blocked).</summary>
    public void ReleaseHang() => _hang.Set();

    public long Steps => Interlocked.Read(ref _steps);
    public long Loads => Interlocked.Read(ref _loads);
    public long InjectedOoms;
    public long InjectedCrashes;

    public long NextStep() => Interlocked.Increment(ref _steps);
    public long NextLoad() => Interlocked.Increment(ref _loads);
}
