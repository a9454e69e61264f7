using ActorQuery.Actors.Workers;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Contracts;
using Microsoft.Extensions.DependencyInjection;

namespace ActorQuery.Api.Endpoints;

/// <summary>GET /v1/models (OpenAI's list, with each pooled model's state and memory beside it) and the pool's admin
/// endpoints: GET /admin/models, POST /admin/models/{name}/load and /unload.</summary>
internal static class ModelEndpoints
{
    public static async Task<IResult> List(IServedModels models, IServiceProvider services, ApiOptions options, CancellationToken ct)
    {
        var pool = await PoolView(services, options, ct, required: false);
        return Results.Json(new ModelList("list", models.All.Select(m => Card(m, pool)).ToList()), ApiJson.Options);
    }

    public static async Task<IResult> One(string id, IServedModels models, IServiceProvider services, ApiOptions options, CancellationToken ct)
    {
        var model = models.Resolve(id);
        var pool = await PoolView(services, options, ct, required: false);
        return Results.Json(Card(model, pool), ApiJson.Options);
    }

    public static async Task<IResult> Pool(IServedModels models, IServiceProvider services, ApiOptions options, CancellationToken ct)
    {
        var pool = (await PoolView(services, options, ct, required: true))!;
        return Results.Json(new ModelPoolResponse(pool.BudgetBytes, pool.BudgetTerms, pool.ReservedBytes,
            models.All.Select(m => Card(m, pool)).ToList()), ApiJson.Options);
    }

    public static Task<IResult> Load(string name, IServedModels models, IServiceProvider services, ApiOptions options, CancellationToken ct) =>
        Drive(name, models, services, options, (c, n) => c.LoadAsync(n, options.StatusTimeout, ct), ct);

    public static Task<IResult> Unload(string name, IServedModels models, IServiceProvider services, ApiOptions options, CancellationToken ct) =>
        Drive(name, models, services, options, (c, n) => c.UnloadAsync(n, options.StatusTimeout, ct), ct);

    private static async Task<IResult> Drive(string name, IServedModels models, IServiceProvider services, ApiOptions options,
        Func<IModelPoolClient, string, Task<ModelPoolAnswer>> call, CancellationToken ct)
    {
        var client = Client(services);
        var model = models.Resolve(name);
        var answer = await ActorAnswer.Or503("the model pool", () => call(client, model.Name), ct);
        if (answer.Status != 200)
            throw new ApiException(answer.Status, "name", answer.Error ?? $"status {answer.Status}",
                answer.Status switch { 404 => "model_not_found", 409 => "conflict", _ => "service_unavailable" });
        var pool = await PoolView(services, options, ct, required: false);
        return Results.Json(Card(model, pool), ApiJson.Options, statusCode: 202);
    }

    private static IModelPoolClient Client(IServiceProvider services) =>
        services.GetService<IModelPoolClient>()
        ?? throw new ApiException(404, null, "this server serves one model (--model DIR); there is no model pool: serve several with "
                                             + "--model NAME=DIR or --models-dir DIR", "not_found");

    private static async Task<ModelPoolView?> PoolView(IServiceProvider services, ApiOptions options, CancellationToken ct, bool required)
    {
        if (required) return await ActorAnswer.Or503("the model pool", () => Client(services).GetAsync(options.StatusTimeout, ct), ct);
        if (services.GetService<IModelPoolClient>() is not { } client) return null;
        try { return await client.GetAsync(options.StatusTimeout, ct); }
        catch (Exception) when (!ct.IsCancellationRequested) { return null; } // the list still stands without the pool's states
    }

    private static ModelCard Card(IServedModel model, ModelPoolView? pool)
    {
        var info = pool?.Models.FirstOrDefault(p => string.Equals(p.Name, model.Name, StringComparison.OrdinalIgnoreCase));
        return new(model.Name, "model", model.CreatedAt.ToUnixTimeSeconds(), "actorquery", model.ContextLength, info is null ? null : Dto(info));
    }

    internal static ModelPoolDto Dto(ModelPoolInfo i) => new(
        i.State, i.Error, i.Pinned, KeepAliveDuration.Format(i.KeepAliveSeconds is { } s ? TimeSpan.FromSeconds(s) : null),
        i.ReservationBytes, i.ReservationTerms, i.ResidentBytes, i.Live, i.Folder, i.LoadedAt, i.LastUsed, i.Loads, i.Unloads,
        i.Evictions, i.LoadSeconds);
}
