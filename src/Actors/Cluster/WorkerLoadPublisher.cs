using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;

namespace ActorQuery.Actors.Cluster;

/// <summary>
/// One per worker node: subscribes to the node's own workers and publishes their <see cref="WorkerStatus"/> to every
/// gateway in the cluster over Distributed Pub/Sub. A state change (Ready, Restarting, Failed...) goes out at once;
/// load-only changes (running, queued, free KV, which move with every generated token) are coalesced to at most one
/// message per worker per <see cref="ClusterNodeOptions.LoadPublishInterval"/>; and every worker is re-published each
/// <see cref="ClusterNodeOptions.HeartbeatInterval"/> so that a gateway that joins later, or a node that becomes
/// reachable again, learns about it without asking.
/// </summary>
public sealed class WorkerLoadPublisher : ReceiveActor, IWithTimers
{
    private sealed record Flush : INoSerializationVerificationNeeded
    {
        public static readonly Flush Instance = new();
    }

    private sealed record Heartbeat : INoSerializationVerificationNeeded
    {
        public static readonly Heartbeat Instance = new();
    }

    private readonly IActorRef _mediator;
    private readonly TimeSpan _loadInterval;
    private readonly Dictionary<IActorRef, WorkerStatus> _latest = new();
    private readonly Dictionary<IActorRef, WorkerStatus> _published = new();
    private readonly HashSet<IActorRef> _dirty = new();

    public ITimerScheduler Timers { get; set; } = null!;

    public WorkerLoadPublisher(TimeSpan loadInterval, TimeSpan heartbeat, IActorRef? mediator = null)
    {
        _mediator = mediator ?? DistributedPubSub.Get(Context.System).Mediator;
        _loadInterval = loadInterval;
        Receive<RegisterWorker>(m =>
        {
            Context.Watch(m.Worker);
            m.Worker.Tell(new SubscribeWorkerStatus(Self));
        });
        Receive<WorkerStatus>(s =>
        {
            var worker = Sender;
            _latest[worker] = s;
            if (!_published.TryGetValue(worker, out var last) || last.State != s.State || last.Model != s.Model
                || last.Error != s.Error || last.KvCapacityTokens != s.KvCapacityTokens)
            {
                Publish(worker, s);
                return;
            }
            _dirty.Add(worker);
            if (!Timers.IsTimerActive("flush")) Timers.StartSingleTimer("flush", Flush.Instance, _loadInterval);
        });
        Receive<Flush>(_ =>
        {
            foreach (var w in _dirty.ToList()) if (_latest.TryGetValue(w, out var s)) Publish(w, s);
            _dirty.Clear();
        });
        Receive<Heartbeat>(_ =>
        {
            foreach (var (w, s) in _latest) Publish(w, s);
            _dirty.Clear();
        });
        Receive<Terminated>(t =>
        {
            _latest.Remove(t.ActorRef);
            _published.Remove(t.ActorRef);
            _dirty.Remove(t.ActorRef);
        });
        _heartbeat = heartbeat;
    }

    private readonly TimeSpan _heartbeat;

    protected override void PreStart() => Timers.StartPeriodicTimer("heartbeat", Heartbeat.Instance, _heartbeat);

    public static Props Props(TimeSpan loadInterval, TimeSpan heartbeat, IActorRef? mediator = null) =>
        Akka.Actor.Props.Create(() => new WorkerLoadPublisher(loadInterval, heartbeat, mediator));

    private void Publish(IActorRef worker, WorkerStatus status)
    {
        _published[worker] = status;
        _dirty.Remove(worker);
        _mediator.Tell(new Publish(ClusterTopics.Workers, new WorkerLoadPublished(worker, status)));
    }
}
