using System.Runtime.InteropServices;
using TorchSharp;

namespace ActorQuery.Inference.Engine;

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

    /// <summary>Exact 1-based step numbers (counted across restarts) that raise an out-of-memory; for deterministic specs.</summary>
    public IReadOnlyList<int> OomAtSteps { get; init; } = Array.Empty<int>();

    public bool Enabled => OomEveryNthStep > 0 || OomOnLoadAttempts > 0 || CrashEveryNthStep > 0 || StepDelayMs > 0
                           || OomAtSteps.Count > 0;

    /// <summary>Throws <see cref="ArgumentException"/> naming the field at fault.</summary>
    public void Validate()
    {
        if (OomEveryNthStep < 0) throw new ArgumentException("must be >= 0", nameof(OomEveryNthStep));
        if (OomOnLoadAttempts < 0) throw new ArgumentException("must be >= 0", nameof(OomOnLoadAttempts));
        if (CrashEveryNthStep < 0) throw new ArgumentException("must be >= 0", nameof(CrashEveryNthStep));
        if (StepDelayMs < 0) throw new ArgumentException("must be >= 0", nameof(StepDelayMs));
        if (OomAtSteps.Any(s => s < 1)) throw new ArgumentException("step numbers start at 1", nameof(OomAtSteps));
    }
}

/// <summary>
/// Counters that outlive one engine: a restarted worker gets a fresh engine, but the fault schedule goes on
/// (otherwise "every 40th step" would hit the same step of every incarnation forever). Thread-safe.
/// </summary>
public sealed class FaultState
{
    private long _steps;
    private long _loads;

    public long Steps => Interlocked.Read(ref _steps);
    public long Loads => Interlocked.Read(ref _loads);
    public long InjectedOoms;
    public long InjectedCrashes;

    internal long NextStep() => Interlocked.Increment(ref _steps);
    internal long NextLoad() => Interlocked.Increment(ref _loads);
}

/// <summary>The non-OOM failure that <see cref="FaultOptions.CrashEveryNthStep"/> injects.</summary>
public sealed class InjectedCrashException(string message) : Exception(message);

/// <summary>
/// Decorates an engine with the faults of <see cref="FaultOptions"/>. An injected out-of-memory is a real
/// one: libtorch is asked for an impossible allocation and the <see cref="ExternalException"/> it raises
/// ("DefaultCPUAllocator: can't allocate memory: you tried to allocate ... bytes") is what propagates, so the
/// classifier and the recovery path see exactly what a real OOM would give them.
/// </summary>
public sealed class FaultInjectingEngine(IGenerationEngine inner, FaultOptions faults, FaultState state) : IGenerationEngine
{
    public ModelDescription Model => inner.Model;
    public int KvCapacityTokens => inner.KvCapacityTokens;
    public int KvFreeTokens => inner.KvFreeTokens;
    public int ActiveSequences => inner.ActiveSequences;
    public bool HasPendingWork => inner.HasPendingWork;
    public EngineMemory MemoryUsage => inner.MemoryUsage;

    public AdmitResult TryAdd(GenerationRequest request) => inner.TryAdd(request);
    public bool Remove(long sequenceId) => inner.Remove(sequenceId);
    public void ReleaseIdleMemory() => inner.ReleaseIdleMemory();
    public void Dispose() => inner.Dispose();

    public StepResult Step()
    {
        if (faults.StepDelayMs > 0) Thread.Sleep(faults.StepDelayMs);
        long n = state.NextStep();
        if ((faults.OomEveryNthStep > 0 && n % faults.OomEveryNthStep == 0) || faults.OomAtSteps.Contains((int)n))
        {
            Interlocked.Increment(ref state.InjectedOoms);
            RaiseRealOutOfMemory(inner.Model.Device);
        }
        if (faults.CrashEveryNthStep > 0 && n % faults.CrashEveryNthStep == 0)
        {
            Interlocked.Increment(ref state.InjectedCrashes);
            throw new InjectedCrashException($"injected crash at step {n} (Faults:CrashEveryNthStep={faults.CrashEveryNthStep})");
        }
        return inner.Step();
    }

    /// <summary>Loads through <paramref name="load"/>, failing the first <see cref="FaultOptions.OomOnLoadAttempts"/>
    /// attempts with a real out-of-memory, and wraps the engine when step faults are configured.</summary>
    public static IGenerationEngine Load(Func<IGenerationEngine> load, FaultOptions faults, FaultState state)
    {
        long attempt = state.NextLoad();
        if (attempt <= faults.OomOnLoadAttempts)
        {
            Interlocked.Increment(ref state.InjectedOoms);
            RaiseRealOutOfMemory();
        }
        var engine = load();
        return faults.OomEveryNthStep > 0 || faults.CrashEveryNthStep > 0 || faults.StepDelayMs > 0 || faults.OomAtSteps.Count > 0
            ? new FaultInjectingEngine(engine, faults, state)
            : engine;
    }

    /// <summary>
    /// Asks libtorch for 1 PiB on <paramref name="device"/> (the engine's own device, so a CUDA engine sees a
    /// CUDA out-of-memory); the allocator throws and TorchSharp surfaces it as <see cref="ExternalException"/>.
    /// On the CPU the text is "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate
    /// memory: you tried to allocate 1125899906842624 bytes. Error code 12 (Cannot allocate memory)" followed
    /// by libtorch's C++ stack (libtorch 2.10, checked in the Actors specs).
    /// </summary>
    public static void RaiseRealOutOfMemory(string device = "cpu")
    {
        using var impossible = torch.empty(new[] { 1L << 50 }, torch.ScalarType.Byte, torch.device(device));
        // Only reached if the allocator overcommits lazily and hands out the pages anyway.
        throw new ExternalException("DefaultCPUAllocator: can't allocate memory (injected: the allocation unexpectedly succeeded)");
    }
}
