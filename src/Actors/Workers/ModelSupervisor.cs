using Akka.Actor;
using Akka.Event;
using ActorQuery.Contracts;

namespace ActorQuery.Actors.Workers;

/// <summary>
/// The worker as routers see it: a stable address in front of one <see cref="ModelActor"/>, which it restarts
/// on failure with the out-of-memory ladder's rungs 2–4:
/// <list type="number">
/// <item>(rung 1, preemption, is inside the engine; the ModelActor counts it)</item>
/// <item>a step that fails restarts the ModelActor with cleanup (engine disposed, GC, malloc_trim, reload),
///   after an exponential backoff with jitter; messages that arrive meanwhile wait in its mailbox;</item>
/// <item><see cref="WorkerOptions.DegradeAfterOoms"/> out-of-memory failures within <see cref="WorkerOptions.OomWindow"/>
///   reload with half the KV budget and batch (then, where allowed, on the CPU) instead of looping;</item>
/// <item>a model that cannot load is tried again after the backoff, <see cref="WorkerOptions.MaxLoadAttempts"/> loads
///   in all; then it stops: the worker is Failed, queries are given back, no crash loop.</item>
/// </list>
/// A step that has not returned after <see cref="WorkerOptions.StepTimeout"/> (a hung native call) is seen through the
/// <see cref="StepClock"/>: in a worker process the process ends (its parent restarts it, its queries resume); in the
/// server process the worker is Failed and its queries are resumed elsewhere.
/// Publishes its <see cref="WorkerStatus"/> to subscribers (routers, the watchdog) whenever it changes.
/// </summary>
public sealed class ModelSupervisor : ReceiveActor, IWithTimers
{
    private sealed record WatchSteps : INoSerializationVerificationNeeded
    {
        public static readonly WatchSteps Instance = new();
    }

    private readonly StepClock _clock = new();
    public ITimerScheduler Timers { get; set; } = null!;

    private readonly string _worker;
    private readonly string _node;
    private readonly WorkerOptions _options;
    private readonly RestartPolicy _policy;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<IActorRef> _subscribers = new();
    private readonly IActorRef _model;
    private readonly FaultState? _faults;

    private WorkerState _state = WorkerState.Loading;
    private int _restarts, _ooms, _crashes, _preemptions, _failedLoads;
    private DateTimeOffset? _lastOom, _readyAt;
    private string? _error, _modelName, _device;
    private ModelActor.LoadReport _load = new(0, 0, 0, 0, null, 0);
    private int _kvBlockSize = 1;
    private string? _memoryPressure;
    private WorkerStatus? _published;
    private bool _draining;

    public ModelSupervisor(string worker, string node, IEngineFactory factory, WorkerOptions options, Func<double>? random = null)
    {
        _worker = worker;
        _node = node;
        _options = options;
        _policy = new RestartPolicy(options, factory.CanFallBackToCpu, random ?? Random.Shared.NextDouble);
        _faults = (factory as IFaultControl)?.State;
        _model = Context.ActorOf(ModelActor.Props(worker, node, factory, options.Dispatcher, _clock), "model");
        Context.Watch(_model);

        Receive<ModelActor.Started>(_ =>
        {
            var delay = _policy.NextDelay();
            if (_restarts > 0) _log.Info("{0}: reloading in {1:0} ms ({2})", _worker, delay.TotalMilliseconds, _policy.Settings.Describe());
            Sender.Tell(new ModelActor.LoadEngine(_policy.Settings, delay));
        });
        Receive<ModelActor.Loaded>(m =>
        {
            _state = WorkerState.Ready;
            _readyAt = DateTimeOffset.UtcNow;
            _failedLoads = 0;
            _error = null;
            _modelName = m.Model.Name;
            _device = m.Settings.ForceCpu ? "cpu" : m.Model.Device;
            _kvBlockSize = m.KvBlockSize;
            _load = new ModelActor.LoadReport(0, 0, m.KvCapacityTokens, m.KvCapacityTokens, m.Memory, 0);
            var mem = m.Memory;
            _log.Info("{0}: model {1} ready on {2} ({3}); memory: {4}", _worker, m.Model.Name, _device, m.Settings.Describe(),
                $"weights {MemorySize.Format(mem.WeightBytes)} + load overhead {MemorySize.Format(mem.LoadOverheadBytes)} + activation peak "
                + $"{MemorySize.Format(mem.ActivationPeakBytes)} + KV pool {MemorySize.Format(mem.KvCacheBytes)} ({m.KvCapacityTokens} tokens)");
            Publish();
        });
        Receive<ModelActor.LoadFailed>(m => OnLoadFailed(m));
        Receive<ModelActor.LoadReport>(m =>
        {
            if (m.NewPreemptions > 0) _preemptions += m.NewPreemptions;
            _load = m;
            if (_readyAt is { } t && DateTimeOffset.UtcNow - t > _options.BackoffResetAfter) _policy.ResetBackoff();
            Publish();
        });

        Receive<RunQuery>(m =>
        {
            if (_state is WorkerState.Failed or WorkerState.Stopped)
                Sender.Tell(new QueryReturned(m.Ticket, $"worker {_worker} failed: {_error}", 0));
            else _model.Forward(m);
        });
        Receive<CancelRun>(m => { if (_state is not (WorkerState.Failed or WorkerState.Stopped)) _model.Forward(m); });
        Receive<CleanupMemory>(m => { if (_state is not (WorkerState.Failed or WorkerState.Stopped)) _model.Forward(m); });
        Receive<ShedLoad>(m => { if (_state == WorkerState.Ready) _model.Forward(m); });
        Receive<CleanupWorker>(_ =>
        {
            var request = new ModelActor.CleanupNow(_node, Status().State.ToString().ToLowerInvariant(), Sender);
            // A failed or stopped worker has no model actor to do it: its process is collected here.
            if (_state is WorkerState.Failed or WorkerState.Stopped) Sender.Tell(ModelActor.Measured(_worker, request, NativeMemory.CollectAndTrim));
            else _model.Tell(request);
        });
        Receive<ArmFaults>(m =>
        {
            if (_faults is not null)
            {
                var before = _faults.Live;
                var armed = _faults.Arm(m.Faults);
                if (armed != before)
                    _log.Warning("{0}: faults {1}", _worker, armed.Armed ? $"armed: {armed.Describe()}" : $"disarmed (were: {before.Describe()})");
            }
            Sender.Tell(Faults());
        });
        Receive<GetFaults>(_ => Sender.Tell(Faults()));
        Receive<MemoryPressure>(m =>
        {
            _memoryPressure = m.Reason;
            Publish();
        });
        Receive<SubscribeWorkerStatus>(m =>
        {
            if (_subscribers.Add(m.Subscriber)) Context.Watch(m.Subscriber);
            m.Subscriber.Tell(Status());
        });
        Receive<GetWorkerStatus>(_ => Sender.Tell(Status()));
        Receive<DrainWorker>(_ =>
        {
            if (_draining) return;
            _draining = true;
            _log.Info("{0}: draining (its node shuts down, or its model makes room for another): finishing {1} running queries, taking no new ones", _worker, _load.Running + _load.Queued);
            Publish();
        });
        Receive<WatchSteps>(_ =>
        {
            if (_state != WorkerState.Ready || _clock.Running is not { } running || running < _options.StepTimeout) return;
            string why = $"a step made no progress for {running.TotalSeconds:0.#} s (step timeout {_options.StepTimeout.TotalSeconds:0.#} s)";
            if (_options.ExitProcessOnHungStep)
            {
                _log.Error("{0}: {1}; this worker process ends so that its parent restarts it and its queries resume", _worker, why);
                Environment.FailFast($"{_worker}: {why}");
            }
            Fail($"{why}; its thread cannot be reclaimed, restart the server (/health/live is 503)");
        });
        Receive<Terminated>(t =>
        {
            if (t.ActorRef.Equals(_model))
            {
                if (_state != WorkerState.Failed) { _state = WorkerState.Stopped; _error ??= "model actor stopped"; }
                Publish();
            }
            else _subscribers.Remove(t.ActorRef);
        });
    }

    public static Props Props(string worker, string node, IEngineFactory factory, WorkerOptions options, Func<double>? random = null) =>
        Akka.Actor.Props.Create(() => new ModelSupervisor(worker, node, factory, options, random));

    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(maxNrOfRetries: -1, withinTimeRange: Timeout.InfiniteTimeSpan, localOnlyDecider: OnModelFailure);

    /// <summary>Runs in this actor's context (Akka calls the decider while handling the child's failure).</summary>
    private Directive OnModelFailure(Exception e)
    {
        if (e is ActorInitializationException)
        {
            Fail($"model actor could not start: {e.InnerException?.Message ?? e.Message}");
            return Directive.Stop;
        }
        var now = DateTimeOffset.UtcNow;
        bool oom = OutOfMemory.IsOutOfMemory(e);
        _restarts++;
        if (oom) { _ooms++; _lastOom = now; } else _crashes++;
        if (_readyAt is { } t && now - t > _options.BackoffResetAfter) _policy.ResetBackoff();
        bool degraded = _policy.RecordFailure(oom, now);
        if (oom) _log.Warning("{0}: out of memory in a step ({1}); restarting with cleanup (restart {2}, OOM {3})", _worker, ModelActor.FirstLine(e), _restarts, _ooms);
        else _log.Error(e, "{0}: model failed; restarting with cleanup (restart {1})", _worker, _restarts);
        if (degraded) _log.Warning("{0}: {1}", _worker, _policy.DegradedReason);
        _state = WorkerState.Restarting;
        _readyAt = null;
        _load = _load with { Running = 0, Queued = 0, KvFreeTokens = 0, Memory = null };
        Publish();
        return Directive.Restart;
    }

    protected override void PreStart()
    {
        if (_options.StepTimeout > TimeSpan.Zero)
            Timers.StartPeriodicTimer("watch-steps", WatchSteps.Instance,
                TimeSpan.FromMilliseconds(Math.Clamp(_options.StepTimeout.TotalMilliseconds / 4, 10, 1000)));
    }

    private void OnLoadFailed(ModelActor.LoadFailed m)
    {
        _failedLoads++;
        if (!m.OutOfMemory)
        {
            if (_failedLoads >= _options.MaxLoadAttempts)
            {
                Fail($"model failed to load {_failedLoads} times: {m.Reason}");
                return;
            }
            _policy.RecordFailure(outOfMemory: false, DateTimeOffset.UtcNow);
            var retry = _policy.NextDelay();
            _log.Warning("{0}: model failed to load ({1}); trying again in {2:0} ms (attempt {3} of {4})", _worker, m.Reason,
                retry.TotalMilliseconds, _failedLoads + 1, _options.MaxLoadAttempts);
            _state = WorkerState.Restarting;
            _error = m.Reason;
            Sender.Tell(new ModelActor.LoadEngine(_policy.Settings, retry));
            Publish();
            return;
        }
        _ooms++;
        _lastOom = DateTimeOffset.UtcNow;
        if (_failedLoads >= _options.MaxLoadAttempts)
        {
            Fail($"model ran out of memory on {_failedLoads} load attempts ({m.Reason})");
            return;
        }
        _policy.RecordFailure(outOfMemory: false, DateTimeOffset.UtcNow); // backoff only; the load OOM degrades below
        if (_policy.Degrade("out of memory while loading")) _log.Warning("{0}: {1}", _worker, _policy.DegradedReason);
        else _log.Warning("{0}: out of memory while loading at the smallest setting; trying again", _worker);
        _state = WorkerState.Restarting;
        var delay = _policy.NextDelay();
        Sender.Tell(new ModelActor.LoadEngine(_policy.Settings, delay));
        Publish();
    }

    private void Fail(string error)
    {
        _state = WorkerState.Failed;
        _error = error;
        _log.Error("{0}: {1}; the worker is out of service (node not ready unless another worker is)", _worker, error);
        _model.Tell(ModelActor.Retire.Instance);
        Publish();
    }

    private FaultsReported Faults() =>
        new(_worker, _node, Environment.ProcessId, _faults?.Live, _faults?.Steps ?? 0, _faults?.LeakedBytes ?? 0);

    private WorkerStatus Status()
    {
        var s = _policy.Settings;
        return new WorkerStatus
        {
            Worker = _worker, Node = _node, State = _draining && _state == WorkerState.Ready ? WorkerState.Draining : _state, Model = _modelName, Device = _device, Error = _error,
            Running = _load.Running, Queued = _load.Queued, KvFreeTokens = _load.KvFreeTokens, KvCapacityTokens = _load.KvCapacityTokens,
            MaxBatch = s.MaxBatch, TensorBytes = _load.TensorBytes, Memory = _load.Memory, KvBlockSize = _kvBlockSize,
            MemoryPressure = _memoryPressure,
            Restarts = _restarts, OomCount = _ooms, LastOom = _lastOom, Preemptions = _preemptions,
            Degraded = _policy.DegradeLevel > 0, DegradedReason = _policy.DegradedReason, DegradeLevel = _policy.DegradeLevel,
            Crashes = _crashes, LoadAttempts = _failedLoads,
        };
    }

    private void Publish()
    {
        var status = Status();
        if (status == _published) return;
        _published = status;
        foreach (var s in _subscribers) s.Tell(status);
    }
}
