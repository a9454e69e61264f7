using System.Runtime.InteropServices;
using ActorQuery.Tokenization;
using TorchSharp;

namespace ActorQuery.Inference.Engine;

/// <summary>The non-OOM failure that <see cref="FaultOptions.CrashEveryNthStep"/> injects.</summary>
public sealed class InjectedCrashException(string message) : Exception(message);

/// <summary>
/// Decorates an engine with the faults of <see cref="FaultOptions"/>; the step faults are read from
/// <see cref="FaultState.Live"/> at every step, so that they can be armed while it runs. An injected out-of-memory is a real
/// one: libtorch is asked for an impossible allocation and the <see cref="ExternalException"/> it raises
/// ("DefaultCPUAllocator: can't allocate memory: you tried to allocate ... bytes") is what propagates, so the
/// classifier and the recovery path see exactly what a real OOM would give them.
/// </summary>
public sealed class FaultInjectingEngine(IGenerationEngine inner, FaultOptions faults, FaultState state) : IGenerationEngine
{
    public ModelDescription Model => inner.Model;
    public int KvCapacityTokens => inner.KvCapacityTokens;
    public int KvFreeTokens => inner.KvFreeTokens;
    public int RunningSequences => inner.RunningSequences;
    public int WaitingSequences => inner.WaitingSequences;
    public bool HasPendingWork => inner.HasPendingWork;
    public EngineMemory MemoryUsage => inner.MemoryUsage;

    public AddResult TryAdd(GenerationRequest request) => inner.TryAdd(request);
    public bool Remove(long sequenceId) => inner.Remove(sequenceId);
    public void ReleaseIdleMemory() => inner.ReleaseIdleMemory();
    public int KvBlockSize => inner.KvBlockSize;
    public int Shed() => inner.Shed();
    public void Dispose() => inner.Dispose();

    public StepResult Step()
    {
        // The step faults as armed now: they change while the server runs (POST /admin/faults, the settings file's leak).
        var live = state.Live;
        if (live.StepDelayMs > 0) Thread.Sleep(live.StepDelayMs);
        state.LeakStep();
        long n = state.NextStep();
        if (live.HangAtStep > 0 && n == live.HangAtStep) state.Hang();
        if ((live.OomEveryNthStep > 0 && n % live.OomEveryNthStep == 0) || faults.OomAtSteps.Contains((int)n))
        {
            Interlocked.Increment(ref state.InjectedOoms);
            RaiseRealOutOfMemory(inner.Model.Device);
        }
        if (live.CrashEveryNthStep > 0 && n % live.CrashEveryNthStep == 0)
        {
            Interlocked.Increment(ref state.InjectedCrashes);
            throw new InjectedCrashException($"injected crash at step {n} (Faults:CrashEveryNthStep={live.CrashEveryNthStep})");
        }
        return inner.Step();
    }

    /// <summary>Loads through <paramref name="load"/>, failing the first <see cref="FaultOptions.OomOnLoadAttempts"/>
    /// attempts with a real out-of-memory, and wraps the engine when step faults are configured.</summary>
    /// <param name="live">Wrap even with no step fault configured, because one may be armed while it runs (the leak).</param>
    public static IGenerationEngine Load(Func<IGenerationEngine> load, FaultOptions faults, FaultState state, bool live = false)
    {
        long attempt = state.NextLoad();
        if (attempt <= faults.OomOnLoadAttempts)
        {
            Interlocked.Increment(ref state.InjectedOoms);
            RaiseRealOutOfMemory();
        }
        var engine = load();
        return faults.Enabled || live || state.Live.Armed
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

/// <summary>Applies <see cref="FaultOptions"/> to every engine a factory loads (load faults and step faults).</summary>
/// <param name="live">Wrap every engine, so that a fault armed while it runs (<see cref="FaultState.LeakBytesPerStep"/>) applies.</param>
public sealed class FaultInjectingEngineFactory(IEngineFactory inner, FaultOptions faults, FaultState? state = null, bool live = false)
    : IEngineFactory, IFaultControl
{
    public FaultState State { get; } = state ?? new FaultState(faults.Live);

    public IGenerationEngine Load(EngineLoadSettings settings) =>
        FaultInjectingEngine.Load(() => inner.Load(settings), faults, State, live);

    public ITokenizer? Tokenizer => inner.Tokenizer;
    public bool CanFallBackToCpu => inner.CanFallBackToCpu;

    /// <summary>Wraps <paramref name="factory"/> only when some fault is configured.</summary>
    public static IEngineFactory Wrap(IEngineFactory factory, FaultOptions? faults) =>
        faults is { Enabled: true } ? new FaultInjectingEngineFactory(factory, faults) : factory;
}
