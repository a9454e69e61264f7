using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Akka.Actor;

namespace ActorQuery.Actors;

/// <summary>
/// <see cref="IQueryClient"/> over the node's QueryRouter: each submitted query gets a small temporary actor
/// that writes its events into a channel, which the caller reads as an async stream. Cancelling the token, or
/// leaving the stream early, sends <see cref="CancelQuery"/>; a cancelled stream throws
/// <see cref="OperationCanceledException"/> as .NET streams do.
/// </summary>
public sealed class ActorQueryClient(ActorSystem system, IActorRef router) : IQueryClient, INodeAdminClient
{
    /// <summary>The router's gather answers at the workers' timeout, silent ones named; the ask waits this much longer for it.</summary>
    private static readonly TimeSpan GatherMargin = TimeSpan.FromSeconds(1);

    public async IAsyncEnumerable<QueryEvent> SubmitAsync(QueryRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateUnbounded<QueryEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var sink = system.ActorOf(QueryEventSink.Props(channel.Writer, router, request.QueryId));
        router.Tell(new SubmitQuery(request, sink));
        bool ended = false;
        try
        {
            await foreach (var e in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                ended = e.IsTerminal;
                yield return e;
                if (ended) yield break;
            }
        }
        finally
        {
            if (!ended) router.Tell(new CancelQuery(request.QueryId));
            system.Stop(sink);
        }
    }

    public Task StartDrainingAsync(CancellationToken cancellationToken)
    {
        router.Tell(StartDraining.Instance);
        return Task.CompletedTask;
    }

    public Task AbortAllAsync(string reason, CancellationToken cancellationToken)
    {
        router.Tell(new AbortAll(reason));
        return Task.CompletedTask;
    }

    public Task<RouterStatus> GetStatusAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        router.Ask<RouterStatus>(GetStatus.Instance, timeout, cancellationToken);

    public Task<NodeCleanedUp> CleanupAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        router.Ask<NodeCleanedUp>(new CleanupNode(timeout), timeout + GatherMargin, cancellationToken);

    public Task<NodeFaults> GetFaultsAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        router.Ask<NodeFaults>(new AskNodeFaults(GetFaults.Instance, timeout), timeout + GatherMargin, cancellationToken);

    public Task<NodeFaults> ArmFaultsAsync(ActorQuery.Contracts.LiveFaults faults, TimeSpan timeout, CancellationToken cancellationToken) =>
        router.Ask<NodeFaults>(new AskNodeFaults(new ArmFaults(faults), timeout), timeout + GatherMargin, cancellationToken);
}

/// <summary>Writes one query's events into a channel; fails the query if the router dies first.</summary>
internal sealed class QueryEventSink : ReceiveActor
{
    public QueryEventSink(ChannelWriter<QueryEvent> writer, IActorRef router, string queryId)
    {
        Context.Watch(router);
        Receive<QueryEvent>(e =>
        {
            writer.TryWrite(e);
            if (!e.IsTerminal) return;
            writer.TryComplete();
            Context.Stop(Self);
        });
        Receive<Terminated>(_ =>
        {
            writer.TryWrite(new QueryFailed(queryId, "the node's query router stopped"));
            writer.TryComplete();
            Context.Stop(Self);
        });
    }

    public static Props Props(ChannelWriter<QueryEvent> writer, IActorRef router, string queryId) =>
        Akka.Actor.Props.Create(() => new QueryEventSink(writer, router, queryId));
}
