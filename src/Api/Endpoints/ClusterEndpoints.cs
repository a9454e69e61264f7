using System.Text;
using ActorQuery.Actors;
using ActorQuery.Actors.Cluster;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQuery.Api.Endpoints;

/// <summary>GET /cluster: members, roles, reachability, and each worker's state and load.</summary>
internal static class ClusterEndpoints
{
    public static async Task<IResult> Cluster(IServiceProvider services, IQueryClient client, ApiOptions options, CancellationToken ct)
    {
        var view = services.GetService<IClusterViewClient>();
        return await ActorAnswer.Or503("the cluster view", async () => view is null
            ? Results.Json(Standalone(await client.GetStatusAsync(options.StatusTimeout, ct)), ApiJson.Options)
            : Results.Json(FromView(await view.GetViewAsync(options.StatusTimeout, ct)), ApiJson.Options), ct);
    }

    internal static ClusterResponse FromView(ClusterView v) => new(
        Enabled: true, v.SelfAddress, v.SelfRoles, v.Leader,
        v.Members.Select(m => new ClusterMember(m.Address, m.Roles, SnakeCase(m.Status), m.Reachable, m.IsSelf, m.IsLeader)).ToList(),
        v.Members.Where(m => !m.Reachable).Select(m => m.Address).ToList(),
        v.Workers.Select(w => Worker(w.Address, w.Status, w.LastSeen)).ToList());

    private static ClusterResponse Standalone(RouterStatus s) => new(
        Enabled: false, null, [], null, [], [], s.Workers.Select(w => Worker(s.Node, w, null)).ToList());

    private static ClusterWorker Worker(string address, WorkerStatus w, DateTimeOffset? seen) => new(
        address, w.Node, w.Worker, w.State.ToString().ToLowerInvariant(), w.Model, w.Running, w.Queued, w.Running + w.Queued,
        w.KvFreeTokens, w.KvCapacityTokens, w.Restarts, w.OomCount, w.Degraded, w.Error, seen);

    /// <summary>Akka's member status names (WeaklyUp) in the API's snake_case (weakly_up).</summary>
    private static string SnakeCase(string name)
    {
        var sb = new StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0) sb.Append('_');
            sb.Append(char.ToLowerInvariant(name[i]));
        }
        return sb.ToString();
    }
}
