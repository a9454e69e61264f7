using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Inference.Memory;
using ActorQuery.Inference.Model;
using Serilog;

namespace ActorQuery.Host.Serve;

/// <summary>
/// This node's memory plan, made once at start before any model loads: the real limit (<see cref="MemoryLimits"/>),
/// the budget (<see cref="MemoryBudget"/>: limit × utilization, less what the process holds with libtorch loaded), each
/// worker's share, and the weight format that fits it (<see cref="EnginePlanner"/>). On CUDA the workers plan inside the
/// device's memory instead, and the host budget is left to the runtime. A plan that cannot fit throws
/// <see cref="MemoryPlanException"/> (exit code 2); a limit above the cgroup's throws <see cref="OptionsException"/>.
/// </summary>
internal sealed record NodeMemoryPlan(MemoryBudget Host, EnginePlan? Engine, PlannedFormat? Format, string? DeviceTerms)
{
    /// <param name="workers">Model workers in this process (0: none load here).</param>
    /// <param name="shareWorkers">Workers the budget is shared by: this process's, or in a worker process those of all
    /// the node's worker processes.</param>
    /// <param name="otherHeldBytes">What other processes of the node hold (a worker process's parent server).</param>
    public static NodeMemoryPlan Make(ServeOptions options, EngineOptions engine, int workers, int shareWorkers, long otherHeldBytes = 0)
    {
        MemoryLimitReading limit;
        try { limit = MemoryLimits.Read(options.MemoryLimitBytes); }
        catch (MemoryLimitException e) { throw new OptionsException($"{ServeOptions.Section}:MemoryLimit: {e.Message}"); }
        // libtorch's libraries are part of what the process holds before any model: load them before reading it.
        if (workers > 0) using (TorchSharp.torch.zeros(1)) { }
        long held = NativeMemory.ResidentBytes() + otherHeldBytes;
        var host = new MemoryBudget(limit.LimitBytes, limit.Source, options.MemoryUtilization, held, limit.AvailableBytes, workers == 0 ? 0 : shareWorkers);
        if (WorkerProcessRole.Current?.ShareBytes is { } poolShare && workers > 0)
        {
            // A model pool's worker process: its model's reservation is its whole budget, whatever the others hold.
            held = NativeMemory.ResidentBytes();
            host = new MemoryBudget(poolShare, "the model pool's reservation", 1.0, held, limit.AvailableBytes, workers);
            shareWorkers = workers;
        }
        Log.Information("memory: limit {Limit} ({Source}: {Detail}), {Available} free now; budget {Budget} ({Terms})",
            MemorySize.Format(limit.LimitBytes), limit.Source, limit.Detail, MemorySize.Format(limit.AvailableBytes),
            MemorySize.Format(host.BudgetBytes), host.Describe());
        if (workers == 0) return new NodeMemoryPlan(host, null, null, null);

        workers = shareWorkers;
        long share = host.PerWorkerBytes;
        string terms = host.Describe();
        string? deviceTerms = null;
        var device = DeviceAndDtype.ResolveDevice(options.Device);
        if (device.type == TorchSharp.DeviceType.CUDA && CudaMemory.Info(device.index) is { } gpu)
        {
            // The device has its own budget: its total × utilization, less what is in use on it already.
            long budget = Math.Max(0, Math.Min((long)(gpu.Total * options.MemoryUtilization) - (gpu.Total - gpu.Free), gpu.Free));
            share = budget / workers;
            host = host with { Device = new DeviceBudget($"CUDA device {Math.Max(0, (int)device.index)} (cudaMemGetInfo)", gpu.Total, budget) };
            terms = deviceTerms = $"CUDA device {MemorySize.Format(gpu.Total)} x {options.MemoryUtilization:0.##}, less {MemorySize.Format(gpu.Total - gpu.Free)} in use"
                                  + (workers > 1 ? $", shared by {workers} workers" : "");
        }
        var plan = new EnginePlan(share, terms, options.KvCacheBytes);
        var format = EnginePlanner.Choose(engine, plan);
        Log.Information("memory: each of {Workers} worker(s) plans within {Share}; weights {Weights} ({Why}); KV pool {Kv}",
            workers, MemorySize.Format(share), MemorySize.Format(format.WeightBytes), format.Why,
            options.KvCacheBytes is { } kv ? MemorySize.Format(kv) : "auto (what is left after the activation peak, measured at load)");
        return new NodeMemoryPlan(host, plan, format, deviceTerms);
    }
}

/// <summary>
/// A plan that turns out not to fit once the model is loaded and its activations measured (before any worker of this
/// process was ever ready) ends the server with exit code 2 and the plan's one line, as a plan refused before loading
/// does. Later (a reload after an out-of-memory) the worker fails alone and the others keep serving.
/// </summary>
internal sealed class StartupPlanGuard(IEngineFactory inner, Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime) : IEngineFactory
{
    private int _loaded;

    /// <summary>Set when the start failed this way: the serve command prints it and exits with code 2.</summary>
    public static string? StartFailure { get; private set; }

    public IGenerationEngine Load(EngineLoadSettings settings)
    {
        try
        {
            var engine = inner.Load(settings);
            Interlocked.Exchange(ref _loaded, 1);
            return engine;
        }
        catch (MemoryPlanException e) when (Volatile.Read(ref _loaded) == 0)
        {
            StartFailure = e.Message;
            Log.Fatal("memory plan does not fit: {Reason}", e.Message);
            lifetime.StopApplication();
            throw;
        }
    }

    public ActorQuery.Tokenization.ITokenizer? Tokenizer => inner.Tokenizer;
    public bool CanFallBackToCpu => inner.CanFallBackToCpu;
}
