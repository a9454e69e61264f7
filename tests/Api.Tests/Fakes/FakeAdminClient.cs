using ActorQuery.Actors;
using ActorQuery.Contracts;

namespace ActorQuery.Api.Tests.Fakes;

/// <summary>A node with two workers in one worker process, as the router's gather answers for them: cleanup frees
/// <see cref="FreedPerWorker"/> bytes per worker, and armed faults are kept. <see cref="SilentWorker"/> stays silent.</summary>
public sealed class FakeAdminClient : INodeAdminClient
{
    public const int Pid = 4242;
    public const long FreedPerWorker = 64L << 20;
    private static readonly string[] Workers = ["worker-1", "worker-2"];
    private long _resident = 2L << 30;

    public LiveFaults Armed { get; private set; } = LiveFaults.None;
    public string? SilentWorker { get; set; }

    public Task<NodeCleanedUp> CleanupAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var cleaned = new List<WorkerCleanedUp>();
        foreach (var w in Answering())
        {
            long before = _resident;
            _resident -= FreedPerWorker;
            cleaned.Add(new WorkerCleanedUp(w, "node-a", Pid, "ready", before, _resident, 100, 50));
        }
        return Task.FromResult(new NodeCleanedUp("node-a", 3, cleaned, SilentList()));
    }

    public Task<NodeFaults> GetFaultsAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        Task.FromResult(new NodeFaults("node-a", Answering().Select(w => new FaultsReported(w, "node-a", Pid, Armed, 10, 0)).ToList(), SilentList()));

    public Task<NodeFaults> ArmFaultsAsync(LiveFaults faults, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Armed = faults;
        return GetFaultsAsync(timeout, cancellationToken);
    }

    private IEnumerable<string> Answering() => Workers.Where(w => w != SilentWorker);

    private List<string> SilentList() => SilentWorker is null ? [] : [$"node-a/{SilentWorker}"];
}
