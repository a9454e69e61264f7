using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using AkkaCluster = Akka.Cluster.Cluster;
using static Akka.Cluster.ClusterEvent;

namespace ActorQuery.Actors.Cluster;

/// <summary>
/// One per node, next to its QueryRouter. On a gateway it turns the cluster into the router's list of workers; on
/// every node (a worker-only node too) it answers <see cref="GetClusterView"/> for <c>GET /cluster</c>.
/// It subscribes to the workers' published load (Distributed Pub/Sub) and to membership and reachability events,
/// passes on the load of workers on reachable members, and tells the router <see cref="WorkerNodeLost"/> as soon as a
/// node becomes unreachable (not only when the split-brain resolver downs it, which takes stable-after longer), so
/// that the lost node's queries are retried or failed at once. A node that becomes reachable again, or a restarted
/// node (a new incarnation at the same address), comes back with its next heartbeat.
/// </summary>
public sealed class WorkerDirectory : ReceiveActor
{
    private readonly IActorRef? _router;
    private readonly AkkaCluster _cluster = AkkaCluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<Address> _unreachable = new();
    private readonly Dictionary<IActorRef, (WorkerStatus Status, DateTimeOffset Seen)> _workers = new();

    /// <param name="router">The gateway's router; null on a worker-only node (the directory then only answers /cluster).</param>
    public WorkerDirectory(IActorRef? router)
    {
        _router = router;
        Receive<SubscribeAck>(_ => { });
        Receive<WorkerLoadPublished>(OnPublished);
        Receive<ActorQuery.Actors.Workers.ModelCatalogPublished>(m =>
        {
            var address = m.Pool.Path.Address;
            if (!address.HasLocalScope && (_unreachable.Contains(address) || !IsMember(address))) return;
            _router?.Tell(m);
        });
        Receive<UnreachableMember>(m =>
        {
            if (!_unreachable.Add(m.Member.Address)) return;
            NodeLost(m.Member.Address, $"worker node {m.Member.Address} became unreachable");
        });
        Receive<ReachableMember>(m =>
        {
            _unreachable.Remove(m.Member.Address);
            _log.Info("node {0} is reachable again; its workers return with their next load report", m.Member.Address);
        });
        Receive<MemberRemoved>(m =>
        {
            _unreachable.Remove(m.Member.Address);
            NodeLost(m.Member.Address, $"worker node {m.Member.Address} left the cluster ({m.PreviousStatus} → Removed)");
        });
        // A worker process of this node exited or is being recycled: its parent knows before the failure detector does.
        // Its address is treated as unreachable until it is removed, so that a report still in flight cannot bring it back.
        Receive<ActorQuery.Actors.Workers.WorkerProcessLost>(m =>
        {
            _unreachable.Add(m.Node);
            NodeLost(m.Node, m.Reason);
        });
        Receive<IMemberEvent>(_ => { });
        Receive<Terminated>(t => _workers.Remove(t.ActorRef));
        Receive<GetClusterView>(_ => Sender.Tell(View()));
    }

    public static Props Props(IActorRef? router) => Akka.Actor.Props.Create(() => new WorkerDirectory(router));

    protected override void PreStart()
    {
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(ClusterTopics.Workers, Self));
        DistributedPubSub.Get(Context.System).Mediator.Tell(new Subscribe(ClusterTopics.Models, Self));
        _cluster.Subscribe(Self, InitialStateAsEvents, typeof(IMemberEvent), typeof(IReachabilityEvent));
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private void OnPublished(WorkerLoadPublished m)
    {
        var address = m.Worker.Path.Address;
        // A late report of a node that is already gone must not bring its workers back before it is reachable.
        if (!address.HasLocalScope && (_unreachable.Contains(address) || !IsMember(address))) return;
        if (!_workers.ContainsKey(m.Worker)) Context.Watch(m.Worker);
        _workers[m.Worker] = (m.Status, DateTimeOffset.UtcNow);
        _router?.Tell(m);
    }

    private bool IsMember(Address address) =>
        _cluster.State.Members.Any(x => x.Address.Equals(address) && x.Status is Akka.Cluster.MemberStatus.Up or Akka.Cluster.MemberStatus.WeaklyUp);

    private void NodeLost(Address node, string reason)
    {
        if (node.Equals(_cluster.SelfAddress)) return;
        foreach (var w in _workers.Keys.Where(w => w.Path.Address.Equals(node)).ToList())
        {
            Context.Unwatch(w);
            _workers.Remove(w);
        }
        _router?.Tell(new WorkerNodeLost(node, reason));
    }

    private ClusterView View()
    {
        var state = _cluster.State;
        var self = _cluster.SelfAddress;
        var members = state.Members
            .Select(m => new ClusterMemberView(m.Address.ToString(), m.Roles.OrderBy(r => r, StringComparer.Ordinal).ToList(),
                m.Status.ToString(), !state.Unreachable.Contains(m), m.Address.Equals(self), m.Address.Equals(state.Leader)))
            .ToList();
        var workers = _workers
            .Select(w => new ClusterWorkerView(w.Key.Path.Address.HasLocalScope ? self.ToString() : w.Key.Path.Address.ToString(),
                w.Value.Status, w.Value.Seen))
            .OrderBy(w => w.Address, StringComparer.Ordinal).ThenBy(w => w.Status.Worker, StringComparer.Ordinal)
            .ToList();
        return new ClusterView(self.ToString(), _cluster.SelfRoles.OrderBy(r => r, StringComparer.Ordinal).ToList(),
            state.Leader?.ToString(), members, workers);
    }
}
