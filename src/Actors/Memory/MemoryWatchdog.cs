using Akka.Actor;
using Akka.Event;
using ActorQuery.Contracts;

namespace ActorQuery.Actors.Memory;

/// <summary>One reading of the process's memory.</summary>
/// <param name="DeviceBytes">Memory in use on the accelerator, where the device can tell (CUDA); null on CPU.</param>
public sealed record MemoryReading(long ResidentBytes, long ManagedBytes, long? DeviceBytes = null);

/// <summary>Where the watchdog's numbers come from; tests drive it with their own.</summary>
public interface IMemoryReader
{
    MemoryReading Read();

    /// <summary>Memory of the machine or container, the base of the default limit.</summary>
    long MachineBytes { get; }
}

/// <summary>The process as the OS sees it: VmRSS, the managed heap, the machine's (or cgroup's) memory; and the
/// accelerator's used bytes from <paramref name="deviceBytes"/>, which the Host wires to the engine's device reading
/// (none: no device reading).</summary>
public sealed class ProcessMemoryReader(Func<long?>? deviceBytes = null) : IMemoryReader
{
    private readonly Func<long?> _deviceBytes = deviceBytes ?? (() => null);

    public MemoryReading Read() => new(NativeMemory.ResidentBytes(), GC.GetTotalMemory(false), _deviceBytes());

    public long MachineBytes => NativeMemory.TotalAvailableBytes();
}

/// <summary>
/// One per node. Every <see cref="WatchdogOptions.Interval"/> reads memory; above the cleanup mark it asks the
/// workers to clean up, above the pause mark it pauses the router's admission until usage is back under the
/// cleanup mark (hysteresis, so that admission does not flap). Publishes every reading as a
/// <see cref="MemoryStatus"/> on the EventStream (the router keeps the latest for its status).
/// </summary>
public sealed class MemoryWatchdog : ReceiveActor, IWithTimers
{
    private sealed record Tick : Akka.Actor.INoSerializationVerificationNeeded
    {
        public static readonly Tick Instance = new();
    }

    private readonly WatchdogOptions _options;
    private readonly IMemoryReader _reader;
    private readonly IActorRef _router;
    private readonly long _limit;
    private readonly Dictionary<IActorRef, long> _workers = new(); // worker → its engine's tensor bytes
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private bool _paused;
    private long _cleanups, _pauses;
    private MemoryStatus? _last;

    public ITimerScheduler Timers { get; set; } = null!;

    public MemoryWatchdog(WatchdogOptions options, IMemoryReader reader, IActorRef router)
    {
        _options = options;
        _reader = reader;
        _router = router;
        _limit = options.LimitBytes ?? (long)(reader.MachineBytes * options.LimitFraction);

        Receive<Tick>(_ => Check());
        Receive<RegisterWorker>(m =>
        {
            if (_workers.TryAdd(m.Worker, 0))
            {
                Context.Watch(m.Worker);
                m.Worker.Tell(new SubscribeWorkerStatus(Self));
            }
        });
        Receive<WorkerStatus>(s => { if (_workers.ContainsKey(Sender)) _workers[Sender] = s.TensorBytes; });
        Receive<Terminated>(t => _workers.Remove(t.ActorRef));
        Receive<GetMemoryStatus>(_ => Sender.Tell(_last ?? Check()));
    }

    public static Props Props(WatchdogOptions options, IMemoryReader reader, IActorRef router) =>
        Akka.Actor.Props.Create(() => new MemoryWatchdog(options, reader, router));

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("tick", Tick.Instance, _options.Interval);
        Self.Tell(Tick.Instance);
    }

    private MemoryStatus Check()
    {
        var r = _reader.Read();
        // Device memory is reported, not held against the marks: the KV pool is allocated up front and libtorch's
        // CUDA caching allocator keeps freed blocks (it frees them itself before it raises an out-of-memory), so
        // a GPU's used bytes sit near their peak while the engine is healthy. Device OOMs go up the restart ladder.
        double ratio = (double)r.ResidentBytes / _limit;

        if (ratio >= _options.CleanupMark)
        {
            _cleanups++;
            foreach (var w in _workers.Keys) w.Tell(CleanupMemory.Instance);
        }
        if (ratio >= _options.PauseMark && !_paused)
        {
            _paused = true;
            _pauses++;
            var why = $"memory at {Percent(ratio)} of the {Size(_limit)} limit (pause mark {Percent(_options.PauseMark)})";
            _log.Warning("pausing admission: {0}", why);
            _router.Tell(new PauseAdmission(why));
        }
        else if (_paused && ratio < _options.CleanupMark)
        {
            _paused = false;
            _log.Info("resuming admission: memory at {0} of the limit, under the cleanup mark {1}", Percent(ratio), Percent(_options.CleanupMark));
            _router.Tell(ResumeAdmission.Instance);
        }

        var status = new MemoryStatus(r.ResidentBytes, r.ManagedBytes, _workers.Values.Sum(), r.DeviceBytes,
            _limit, _options.CleanupMark, _options.PauseMark, _cleanups, _pauses, _paused, DateTimeOffset.UtcNow);
        _last = status;
        Context.System.EventStream.Publish(status);
        return status;
    }

    private static string Percent(double fraction) => $"{fraction * 100:0}%";

    private static string Size(long bytes) => bytes >= 1 << 20 ? $"{bytes / (1 << 20)} MiB" : $"{bytes} bytes";
}

/// <summary>Asks the watchdog for its latest <see cref="MemoryStatus"/>.</summary>
public sealed record GetMemoryStatus : Akka.Actor.INoSerializationVerificationNeeded
{
    public static readonly GetMemoryStatus Instance = new();
    private GetMemoryStatus() { }
}
