namespace ActorQuery.Actors;

/// <summary>
/// How HTTP handlers talk to the node's QueryRouter: submit a query and read its events as they come.
/// Cancelling <paramref name="cancellationToken"/> (client gone) sends CancelQuery; the stream then ends.
/// Every stream ends with exactly one terminal <see cref="QueryEvent"/>, unless the caller cancelled.
/// </summary>
public interface IQueryClient
{
    IAsyncEnumerable<QueryEvent> SubmitAsync(QueryRequest request, CancellationToken cancellationToken);

    Task<RouterStatus> GetStatusAsync(TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>The node shuts down: the router takes no new query and the node's workers leave every gateway's routing;
    /// running queries go on.</summary>
    Task StartDrainingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Ends every running query now with <see cref="QueryFailed"/> and <paramref name="reason"/> (the drain
    /// timeout passed), so that each stream gets its error event and its end instead of a cut connection.</summary>
    Task AbortAllAsync(string reason, CancellationToken cancellationToken) => Task.CompletedTask;
}
