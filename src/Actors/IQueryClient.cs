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
}
