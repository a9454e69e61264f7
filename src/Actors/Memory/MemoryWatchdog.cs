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
}

/// <summary>The process as the OS sees it: VmRSS, the managed heap; and the accelerator's used bytes from
/// <paramref name="deviceBytes"/>, which the Host wires to the engine's device reading (none: no device reading).</summary>
/// <param name="otherProcessesBytes">Resident bytes of the node's other processes that this process's plan counts in its
/// held bytes (a worker process: its parent server), added to its own. Their memory counts against the same limit, so
/// marks set on a plan that holds them must be compared with a reading that holds them too; read alone, the process
/// would meet the kernel's limit before its own resident size reached a mark.</param>
public sealed class ProcessMemoryReader(Func<long?>? deviceBytes = null, Func<long>? otherProcessesBytes = null) : IMemoryReader
{
    private readonly Func<long?> _deviceBytes = deviceBytes ?? (() => null);
    private readonly Func<long> _otherProcessesBytes = otherProcessesBytes ?? (() => 0);

    public MemoryReading Read() =>
        new(NativeMemory.ResidentBytes() + _otherProcessesBytes(), GC.GetTotalMemory(false), _deviceBytes());
}

/// <summary>
/// One per node: watches resident memory against the node's plan. The plan is what the process held at start plus
/// every local worker's weights, load overhead, activation peak and KV pool (a worker that is still loading counts its
/// whole share of the budget); the marks are fractions of the headroom that plan leaves under the real limit, so that
/// weights and a full KV pool never trip them, and only memory the plan does not name does.
/// <list type="bullet">
/// <item>above the cleanup mark: the workers and the router's answer cache free what they can, once on the way up and
///   again only if that freed something (or after <see cref="WatchdogOptions.CleanupBackoff"/>), not a full GC every
///   tick; the watchdog then reads every <see cref="WatchdogOptions.FastInterval"/> instead of every
///   <see cref="WatchdogOptions.Interval"/>;</item>
/// <item>above the pause mark: the router stops admitting and the workers carry the reason in their status (so that
///   gateways elsewhere route around this node), until memory is back under the cleanup mark (hysteresis);</item>
/// <item>above the shed mark: the workers also preempt their newest sequences (they are recomputed later, nothing is
///   lost) and hold their steps, for at most <see cref="WatchdogOptions.ShedHold"/>, to stay under the limit before the
///   kernel's OOM killer would act: every step may grow memory, and at this mark a few steps' growth is all that is
///   left.</item>
/// </list>
/// Publishes every reading as a <see cref="MemoryStatus"/> on the EventStream (the router keeps the latest).
/// </summary>
public sealed class MemoryWatchdog : ReceiveActor, IWithTimers
{
    private sealed record Tick : Akka.Actor.INoSerializationVerificationNeeded
    {
        public static readonly Tick Instance = new();
    }

    /// <summary>A cleanup counts as having freed something when memory fell by this share of the headroom.</summary>
    private const double FreedEnough = 0.01;

    private readonly WatchdogOptions _options;
    private readonly MemoryBudget _budget;
    private readonly IMemoryReader _reader;
    private readonly IActorRef _router;
    private readonly Dictionary<IActorRef, WorkerStatus?> _workers = new();
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private MemoryState _state = MemoryState.Normal;
    private string? _reason;
    private long _cleanups, _pauses, _sheds;
    private long? _residentAtCleanup;
    private DateTimeOffset _lastCleanup = DateTimeOffset.MinValue;
    /// <summary>When memory last rose above the shed mark (null: under it); the workers' steps are held for
    /// <see cref="WatchdogOptions.ShedHold"/> from then.</summary>
    private DateTimeOffset? _shedSince;
    private bool _stepsHeld;
    private MemoryStatus? _last;

    public ITimerScheduler Timers { get; set; } = null!;

    public MemoryWatchdog(WatchdogOptions options, MemoryBudget budget, IMemoryReader reader, IActorRef router)
    {
        _options = options;
        _budget = budget;
        _reader = reader;
        _router = router;

        Receive<Tick>(_ =>
        {
            // The next reading is scheduled before this one is published, so that whoever acts on a reading (a spec on
            // virtual time advancing the clock) finds the next one already due.
            var status = Check(publish: false);
            Schedule(status);
            Context.System.EventStream.Publish(status);
        });
        Receive<RegisterWorker>(m =>
        {
            if (_workers.TryAdd(m.Worker, null))
            {
                Context.Watch(m.Worker);
                m.Worker.Tell(new SubscribeWorkerStatus(Self));
                if (_reason is not null) m.Worker.Tell(new MemoryPressure(_reason));
            }
        });
        Receive<WorkerStatus>(s =>
        {
            if (!_workers.TryGetValue(Sender, out var before)) return;
            _workers[Sender] = s;
            // A worker that loaded, failed or reloaded changes the plan, and with it every mark: read again now rather
            // than show (and act on) the old plan until the next tick.
            if (Planned(before) != Planned(s)) Check();
        });
        Receive<Terminated>(t => _workers.Remove(t.ActorRef));
        Receive<GetMemoryStatus>(_ => Sender.Tell(_last ?? Check()));
    }

    public static Props Props(WatchdogOptions options, MemoryBudget budget, IMemoryReader reader, IActorRef router) =>
        Akka.Actor.Props.Create(() => new MemoryWatchdog(options, budget, reader, router));

    protected override void PreStart() => Self.Tell(Tick.Instance);

    /// <summary>What the plan sets aside for one worker: its reported plan on the host, its whole share while it loads
    /// (promised to it), nothing once failed or stopped or when its memory is a device's.</summary>
    private long Planned(WorkerStatus? s) => s?.Memory switch
    {
        { OnDevice: false } m => m.PlannedBytes,
        { OnDevice: true } => 0,
        null when s?.State is WorkerState.Failed or WorkerState.Stopped => 0,
        null => _budget.PerWorkerBytes,
    };

    private void Schedule(MemoryStatus status) => Timers.StartSingleTimer("tick", Tick.Instance, status.ReadEvery);

    private MemoryStatus Check(bool publish = true)
    {
        var r = _reader.Read();
        var now = Context.System.Scheduler.Now;
        long weights = 0, overhead = 0, activations = 0, kv = 0, kvUsed = 0, planned = _budget.HeldBytes;
        foreach (var s in _workers.Values)
        {
            if (s?.Memory is { OnDevice: false } m)
            {
                weights += m.WeightBytes; overhead += m.LoadOverheadBytes; activations += m.ActivationPeakBytes;
                kv += m.KvCacheBytes; kvUsed += m.KvUsedBytes;
            }
            planned += Planned(s);
        }
        long limit = _budget.LimitBytes;
        long room = Math.Max(0, limit - planned);
        long cleanupAt = planned + (long)(room * _options.CleanupMark);
        long pauseAt = planned + (long)(room * _options.PauseMark);
        long shedAt = planned + (long)(room * _options.ShedMark);
        long resident = r.ResidentBytes;
        // The distance above the mark is named too: rounded alone, "602 MiB is above 602 MiB" says nothing.
        string Where(string name, long mark, double fraction) =>
            $"memory {MemorySize.Format(resident)} is {MemorySize.Format(resident - mark)} above the {name} mark {MemorySize.Format(mark)} "
            + $"(plan {MemorySize.Format(planned)} + {fraction * 100:0}% of the {MemorySize.Format(room)} it leaves under the "
            + $"{_budget.LimitSource} {MemorySize.Format(limit)})";

        bool paused = _state is MemoryState.Paused or MemoryState.Shedding;
        if (resident >= pauseAt && !paused)
        {
            _pauses++;
            _reason = Where("pause", pauseAt, _options.PauseMark);
            _log.Warning("pausing admission: {0}", _reason);
            _router.Tell(new PauseAdmission(_reason));
            foreach (var w in _workers.Keys) w.Tell(new MemoryPressure(_reason));
            paused = true;
        }
        else if (paused && resident < cleanupAt)
        {
            _log.Info("resuming admission: memory {0} is back under the cleanup mark {1}", MemorySize.Format(resident), MemorySize.Format(cleanupAt));
            _reason = null;
            _router.Tell(ResumeAdmission.Instance);
            foreach (var w in _workers.Keys) w.Tell(new MemoryPressure(null));
            paused = false;
        }

        if (resident >= shedAt)
        {
            if (_shedSince is null)
            {
                _shedSince = now;
                _log.Warning("shedding load: {0}; the workers preempt their newest sequences and hold their steps for up to {1}",
                    Where("shed", shedAt, _options.ShedMark), _options.ShedHold);
            }
            // Each hold lasts a few readings, so that it lapses on its own once the readings stop renewing it.
            bool hold = now - _shedSince.Value < _options.ShedHold;
            if (_stepsHeld && !hold) _log.Warning("memory stayed above the shed mark for {0}: the workers step on", _options.ShedHold);
            _stepsHeld = hold;
            _sheds++;
            var message = new ShedLoad(hold ? _options.FastInterval * 3 : TimeSpan.Zero);
            foreach (var w in _workers.Keys) w.Tell(message);
        }
        else (_shedSince, _stepsHeld) = (null, false);

        if (resident >= cleanupAt)
        {
            // Once on the way up; again only if the last one freed something, or after the backoff: a cleanup runs a
            // full collection, and repeating one that frees nothing every fast tick would only stall the workers.
            bool freed = _residentAtCleanup is { } before && before - resident >= room * FreedEnough;
            if (_residentAtCleanup is null || freed || now - _lastCleanup >= _options.CleanupBackoff)
            {
                _cleanups++;
                _lastCleanup = now;
                _residentAtCleanup = resident;
                foreach (var w in _workers.Keys) w.Tell(CleanupMemory.Instance);
                _router.Tell(CleanupMemory.Instance);
            }
        }
        else _residentAtCleanup = null;

        var previous = _state;
        _state = resident >= shedAt ? MemoryState.Shedding
            : paused ? MemoryState.Paused
            : resident >= cleanupAt ? MemoryState.Cleanup
            : MemoryState.Normal;

        var status = new MemoryStatus
        {
            LimitBytes = limit, LimitSource = _budget.LimitSource, Utilization = _budget.Utilization, BudgetBytes = _budget.BudgetBytes,
            HeldBytes = _budget.HeldBytes, Device = _budget.Device,
            WeightBytes = weights, LoadOverheadBytes = overhead, ActivationPeakBytes = activations, KvCacheBytes = kv, KvUsedBytes = kvUsed,
            PlannedBytes = planned,
            ResidentBytes = resident, ManagedBytes = r.ManagedBytes, DeviceBytes = r.DeviceBytes,
            CleanupMark = _options.CleanupMark, PauseMark = _options.PauseMark, ShedMark = _options.ShedMark,
            CleanupAtBytes = cleanupAt, PauseAtBytes = pauseAt, ShedAtBytes = shedAt,
            State = _state, Reason = _reason, Cleanups = _cleanups, Pauses = _pauses, Sheds = _sheds,
            ReadEvery = _state == MemoryState.Normal ? NormalInterval(previous, resident, planned, cleanupAt, now) : _options.FastInterval,
            At = now,
        };
        _last = status;
        if (publish) Context.System.EventStream.Publish(status);
        return status;
    }

    /// <summary>When to read next under the cleanup mark: <see cref="WatchdogOptions.Interval"/>, or sooner while memory
    /// grows toward the mark, at half the time it would take at the rate since the last reading (not under
    /// <see cref="WatchdogOptions.FastInterval"/>). Memory that grows tens of MiB a second (a leak in every step) would
    /// otherwise cross the whole headroom between two readings and meet the kernel's limit before any mark acted. Just
    /// back under the mark (a cleanup freed memory, or a pause ended), the next reading comes fast too: the fall says
    /// nothing of where memory goes next, and the growth that brought it up may go on.</summary>
    private TimeSpan NormalInterval(MemoryState before, long resident, long planned, long cleanupAt, DateTimeOffset now)
    {
        if (before != MemoryState.Normal) return _options.FastInterval;
        // Growth across a change of plan is a worker loading, not a rate to extrapolate.
        if (_last is not { } last || last.PlannedBytes != planned || now <= last.At || resident <= last.ResidentBytes)
            return _options.Interval;
        double perSecond = (resident - last.ResidentBytes) / (now - last.At).TotalSeconds;
        var toMark = TimeSpan.FromSeconds(Math.Max(0, cleanupAt - resident) / perSecond / 2);
        return toMark < _options.FastInterval ? _options.FastInterval : toMark > _options.Interval ? _options.Interval : toMark;
    }
}

/// <summary>Asks the watchdog for its latest <see cref="MemoryStatus"/>.</summary>
public sealed record GetMemoryStatus : Akka.Actor.INoSerializationVerificationNeeded
{
    public static readonly GetMemoryStatus Instance = new();
    private GetMemoryStatus() { }
}
