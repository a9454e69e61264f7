using ActorQuery.Actors;
using ActorQuery.Api.Dashboard;
using ActorQuery.Api.Docs;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Endpoints;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Generation;
using ActorQuery.Api.Observability;
using ActorQuery.Api.Security;
using ActorQuery.Api.Shutdown;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Prometheus;
using Scalar.AspNetCore;

namespace ActorQuery.Api;

/// <summary>
/// Registers and maps the HTTP API. The caller must register an <see cref="IQueryClient"/> (the actors) and an
/// <see cref="IServedModel"/> (name, context length, tokenizer).
/// </summary>
public static class ApiServiceCollectionExtensions
{
    private const string ChoicesDescription =
        " `n` (1 to 16) gives that many choices, one query each, indexed 0…n−1 (streamed interleaved by `index`); with `seed`, " +
        "sample i's seed is derived from (seed, i), so the choices are reproducible; usage counts the prompt once. `logit_bias` " +
        "(token id → bias in [-100, 100]) is added to the logits before sampling.";

    private const string ConstraintDescription =
        "`response_format` `{\"type\":\"json_object\"}` (any JSON object) or `{\"type\":\"json_schema\",\"json_schema\":" +
        "{\"name\",\"schema\",\"strict\"}}` is enforced while decoding: the output always parses and validates, or ends with " +
        "`finish_reason: \"length\"`; a schema keyword that cannot be enforced is a 400 naming it.";

    public static IServiceCollection AddActorQueryApi(this IServiceCollection services, Action<ApiOptions>? configure = null)
    {
        var options = new ApiOptions();
        configure?.Invoke(options);
        services.AddSingleton(options);
        services.TryAddSingleton<IServedModels>(sp => ServedModelSet.Single(sp.GetRequiredService<IServedModel>()));
        services.AddSingleton<ApiMetrics>();
        services.AddSingleton<DrainGate>();
        services.AddSingleton<KeyRateLimits>();
        services.AddSingleton<QueryRunner>();
        services.AddHostedService<DrainOnShutdown>();
        services.AddSingleton<Timeline>();
        services.AddSingleton<AlertMonitor>();
        services.AddHostedService(sp => sp.GetRequiredService<AlertMonitor>());
        services.ConfigureHttpJsonOptions(o => ApiJson.Configure(o.SerializerOptions));
        services.AddProblemDetails();
        services.AddOpenApi(o => ApiDocs.Configure(o));
        return services;
    }

    private static void MapModelPool(WebApplication app)
    {
        app.MapGet("/admin/models", ModelEndpoints.Pool).WithTags("Admin")
            .WithSummary("The model pool: budget, reserved bytes and every model's state and memory")
            .Produces<ModelPoolResponse>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(404);
        app.MapPost("/admin/models/{name}/load", ModelEndpoints.Load).WithTags("Admin")
            .WithSummary("Load a model now (evicting idle ones when it does not fit)")
            .WithDescription("202 with the model (state `loading`, or `ready` when it was); 404 unknown model or no pool; 503 when no " +
                             "room can be made (the reason names the budget and the pinned models).")
            .Produces<ModelCard>(202).ProducesProblem(404).ProducesProblem(503);
        app.MapPost("/admin/models/{name}/unload", ModelEndpoints.Unload).WithTags("Admin")
            .WithSummary("Unload a model now, pinned or not; its worker processes stop and return their memory")
            .WithDescription("202 with the model (state `unloading`); 409 while it runs queries; 404 unknown model or no pool.")
            .Produces<ModelCard>(202).ProducesProblem(404).ProducesProblem(409);
    }

    /// <summary>Adds the middleware and maps every endpoint.</summary>
    public static WebApplication UseActorQueryApi(this WebApplication app)
    {
        var metrics = app.Services.GetRequiredService<ApiMetrics>();
        var client = app.Services.GetRequiredService<IQueryClient>();
        var options = app.Services.GetRequiredService<ApiOptions>();
        metrics.Registry.AddBeforeCollectCallback(async ct =>
        {
            // A router that does not answer must not break the scrape; the gauges then keep their last values.
            try { metrics.Apply(await client.GetStatusAsync(options.StatusTimeout, ct)); }
            catch (Exception) when (!ct.IsCancellationRequested) { }
            if (app.Services.GetService<ActorQuery.Actors.Workers.IModelPoolClient>() is { } pool)
            {
                try { metrics.Apply(await pool.GetAsync(options.StatusTimeout, ct)); }
                catch (Exception) when (!ct.IsCancellationRequested) { }
            }
        });

        app.UseMiddleware<RequestIdMiddleware>();
        app.UseMiddleware<RequestMetricsMiddleware>();
        app.UseMiddleware<ApiErrorMiddleware>();
        app.UseMiddleware<ApiKeyMiddleware>();
        app.UseMiddleware<DrainMiddleware>();

        app.MapGet("/", StatusEndpoints.Index).WithTags("Index").WithSummary("A short index of the endpoints")
            .Produces<IndexResponse>();

        app.MapPost("/query", NativeEndpoints.Query).WithTags("Native").WithName("Query")
            .WithSummary("Generate text from a prompt or chat messages")
            .WithDescription("Give `prompt` (plain text) or `messages` (rendered with the model's chat template). With `stream: true` " +
                             "the answer comes as server-sent events: `event: chunk` per text piece, then `event: done` with usage. " +
                             "At most one of `json_schema` (a JSON Schema the output validates against), `regex` (matched by the whole " +
                             "output) and `choices` (the output is one of them) holds the output to a form while decoding; a schema " +
                             "keyword that cannot be enforced is a 400 naming it.")
            .Accepts<NativeQueryRequest>("application/json")
            .Produces<NativeQueryResponse>(200)
            .ProducesProblem(400).ProducesProblem(413).ProducesProblem(415).ProducesProblem(429).ProducesProblem(503)
            .ProducesProblem(504).ProducesProblem(500)
            .WithMetadata(GenerationEndpointMetadata.Instance)
            .AddOpenApiOperationTransformer(ApiDocs.Examples(ApiExamples.NativeRequest, ApiExamples.NativeResponse, ApiExamples.NativeStream));

        app.MapPost("/v1/chat/completions", OpenAiEndpoints.ChatCompletions).WithTags("OpenAI").WithName("ChatCompletions")
            .WithSummary("OpenAI-compatible chat completion")
            .WithDescription("OpenAI's request and response shapes; `stream: true` sends `chat.completion.chunk` events ending in `data: [DONE]`. " +
                             "Errors come as `{\"error\":{\"message\",\"type\",\"param\",\"code\"}}`. " + ConstraintDescription + ChoicesDescription)
            .Accepts<ChatCompletionRequest>("application/json")
            .Produces<ChatCompletionResponse>(200)
            .Produces<OpenAiErrorEnvelope>(400).Produces<OpenAiErrorEnvelope>(413).Produces<OpenAiErrorEnvelope>(429)
            .Produces<OpenAiErrorEnvelope>(503).Produces<OpenAiErrorEnvelope>(504)
            .WithMetadata(GenerationEndpointMetadata.Instance)
            .AddOpenApiOperationTransformer(ApiDocs.Examples(ApiExamples.ChatRequest, ApiExamples.ChatResponse, ApiExamples.ChatStream));

        app.MapPost("/v1/completions", OpenAiEndpoints.Completions).WithTags("OpenAI").WithName("Completions")
            .WithSummary("OpenAI-compatible text completion")
            .WithDescription("`prompt` is a string, an array of strings, an array of token ids or an array of arrays of token ids " +
                             "(at most 16 prompts, prompts × n ≤ 32); choice p × n + j is sample j of prompt p. `echo: true` puts each " +
                             "prompt's text before its completion (not with `logprobs`). " + ConstraintDescription + ChoicesDescription)
            .Accepts<CompletionRequest>("application/json")
            .Produces<CompletionResponse>(200)
            .Produces<OpenAiErrorEnvelope>(400).Produces<OpenAiErrorEnvelope>(413).Produces<OpenAiErrorEnvelope>(429)
            .Produces<OpenAiErrorEnvelope>(503).Produces<OpenAiErrorEnvelope>(504)
            .WithMetadata(GenerationEndpointMetadata.Instance)
            .AddOpenApiOperationTransformer(ApiDocs.Examples(ApiExamples.CompletionRequest, ApiExamples.CompletionResponse, ApiExamples.CompletionStream));

        app.MapPost("/v1/responses", ResponsesEndpoints.Create).WithTags("OpenAI").WithName("Responses")
            .WithSummary("OpenAI-compatible Responses API (stateless)")
            .WithDescription("OpenAI's Responses API without state: `store` must be false or absent (the default here is false), " +
                             "`previous_response_id`, `background`, `conversation`, `include` and built-in tools are 400s naming the field. " +
                             "`input` is a string or a list of message (`input_text`/`output_text` parts), `function_call` and " +
                             "`function_call_output` items; `instructions` come first as a system message. Function `tools` " +
                             "(`{\"type\":\"function\",\"name\",\"parameters\"}`) and `tool_choice` work as on /v1/chat/completions, " +
                             "and `text.format` `json_schema` or `json_object` is enforced while decoding. The output is a `message` item " +
                             "with one `output_text` part and a `function_call` item per call; `max_output_tokens` reached gives status " +
                             "`incomplete`. `stream: true` sends the Responses events (`response.created`, `response.in_progress`, " +
                             "`response.output_item.added`, `response.content_part.added`, `response.output_text.delta`, …, " +
                             "`response.completed`), each with a `sequence_number`.")
            .Accepts<ResponsesRequest>("application/json")
            .Produces<ResponseObject>(200)
            .Produces<OpenAiErrorEnvelope>(400).Produces<OpenAiErrorEnvelope>(413).Produces<OpenAiErrorEnvelope>(429)
            .Produces<OpenAiErrorEnvelope>(503).Produces<OpenAiErrorEnvelope>(504)
            .WithMetadata(GenerationEndpointMetadata.Instance)
            .AddOpenApiOperationTransformer(ApiDocs.Examples(ApiExamples.ResponsesRequest, ApiExamples.ResponsesResponse, ApiExamples.ResponsesStream));

        app.MapGet("/v1/models", ModelEndpoints.List).WithTags("OpenAI").WithSummary("The served models")
            .WithDescription("OpenAI's list. On a server with a model pool each card also has `pool`: its state (available, loading, " +
                             "ready, unloading, failed), the error of a failed load, its reservation of the budget and resident memory, " +
                             "keep-alive, pinning and counters.")
            .Produces<ModelList>().AddOpenApiOperationTransformer(ApiDocs.Examples(null, ApiExamples.Models));
        app.MapGet("/v1/models/{id}", ModelEndpoints.One).WithTags("OpenAI").WithSummary("One model")
            .Produces<ModelCard>().Produces<OpenAiErrorEnvelope>(404);

        app.MapGet("/health", StatusEndpoints.Health).WithTags("Health")
            .WithSummary("Status with every worker's state, restarts and last out-of-memory; 503 when not ready")
            .WithDescription("`status`: `ok`; `no_model_ready` while no worker is ready; `memory_pressure` while the memory watchdog " +
                             "pauses admission (`paused: true`, the reason in `pause_reason`; new queries get 503 until memory is back " +
                             "under the cleanup mark); `shutting_down` while draining. `ready` is true, and the status 200, only for `ok`.")
            .Produces<HealthResponse>(200).Produces<HealthResponse>(503)
            .AddOpenApiOperationTransformer(ApiDocs.Examples(null, ApiExamples.Health));
        app.MapPost("/admin/workers/{id}/recycle", AdminEndpoints.RecycleWorker).WithTags("Admin")
            .WithSummary("Recycle a worker process: it leaves the routing, its running queries resume, and it restarts")
            .WithDescription("`id`: the process's number (`1`) or the name of one of its workers (`worker-1`), as `/health`'s " +
                             "`worker_processes` lists them. 202 with the process; 404 for an unknown id or a node without worker " +
                             "processes (`--worker-processes 0`); 409 while it is recycling, restarting or failed.")
            .Produces<RecycleResponse>(202).ProducesProblem(404).ProducesProblem(409);
        app.MapGet("/health/live", StatusEndpoints.Live).WithTags("Health")
            .WithSummary("Liveness: 200 while the node can serve or recover; 503 when every model worker failed for good")
            .WithDescription("503 `{\"status\":\"cannot_recover\",\"reason\":\"...\"}` when the node has model workers and none is " +
                             "ready, loading or restarting (a model that cannot load after its retries, a hung step in the server process, " +
                             "a worker process given up): an orchestrator should restart the server. A gateway without workers, and a " +
                             "router too busy to answer, are alive.");
        app.MapGet("/health/ready", StatusEndpoints.Ready).WithTags("Health")
            .WithSummary("Readiness: 200 when a model is ready; 503 while loading, under memory pressure or shutting down")
            .WithDescription("503 bodies, checked in this order: `{\"status\":\"shutting_down\"}`; `{\"status\":\"memory_pressure\",\"reason\":\"...\"}` " +
                             "while the memory watchdog pauses admission (the node refuses new queries, so a load balancer should route " +
                             "around it until it resumes); `{\"status\":\"no_model_ready\"}`.");
        app.MapGet("/memory", StatusEndpoints.Memory).WithTags("Health")
            .WithSummary("This node's memory plan next to the watchdog's last reading, its KV tokens and each worker's memory")
            .WithDescription("`limit`: the real limit, its source, the utilization and the budget the workers share. `plan`: runtime " +
                             "overhead, weights, load overhead, activation peak and KV pool of this node's host-memory workers, and their " +
                             "sum. `actual`: resident, managed and device bytes, what the plan does not name (`unaccounted_bytes`) and " +
                             "the headroom under the limit. `watchdog`: its state (normal, cleanup, paused, shedding), the pause reason, " +
                             "its marks as fractions of the plan's headroom and in bytes, and its counters. `limit`, `plan`, `actual` and " +
                             "`watchdog` are null while the watchdog is off; `kv` (this node's workers, summed) and `workers` are always there. " +
                             "All sizes are bytes; `summary` says the same in one line for people.")
            .Produces<MemoryResponse>().ProducesProblem(503).AddOpenApiOperationTransformer(ApiDocs.Examples(null, ApiExamples.Memory));
        app.MapGet("/cluster", ClusterEndpoints.Cluster).WithTags("Health")
            .WithSummary("Cluster members (address, roles, status, reachability) and every worker's state and load")
            .WithDescription("Members as this node sees them (`status`: joining, weakly_up, up, leaving, exiting, down, removed; " +
                             "`reachable`: false while the failure detector has lost the node) and every worker in the cluster with " +
                             "the load its node last published (`running` + `queued` = `load`, free KV tokens). The router sends each " +
                             "query to the least-loaded ready worker. `enabled: false`: the node runs without Akka.Cluster.")
            .Produces<ClusterResponse>().ProducesProblem(503)
            .AddOpenApiOperationTransformer(ApiDocs.Examples(null, ApiExamples.Cluster));
        app.MapGet("/ui", DashboardEndpoints.Page).WithTags("Dashboard").ExcludeFromDescription();
        app.MapGet("/ui/{file}", DashboardEndpoints.Asset).ExcludeFromDescription();
        app.MapGet("/events", DashboardEndpoints.Events).WithTags("Dashboard")
            .WithSummary("The dashboard's live feed (server-sent events): init, then state every second and timeline entries as they happen")
            .WithDescription("`event: init` carries the charts' last 10 minutes (one sample a second: tokens, mean time to first token and " +
                             "inter-token latency in ms) and the timeline so far; then `event: state` every `interval_ms` (default 1000, " +
                             $"[{DashboardEndpoints.MinIntervalMs}, {DashboardEndpoints.MaxIntervalMs}]) with the node, its workers, its memory " +
                             "(as GET /memory), the cluster, the last second's sample and the alerts firing; and `event: timeline` for each " +
                             "new entry (alerts firing and resolved, out-of-memory errors, restarts, workers changing state).")
            .Produces(200, contentType: "text/event-stream").ProducesProblem(400);
        app.MapPost("/admin/drain", AdminEndpoints.Drain).WithTags("Admin")
            .WithSummary("Stop admitting queries, as SIGTERM does: readiness 503, new queries 503, running ones finish")
            .WithDescription("Needs an admin key (`Authorization: Bearer ADMIN_KEY`). The process keeps running; stop it (SIGTERM) " +
                             "once `in_flight` is 0 or the orchestrator has moved traffic elsewhere.")
            .Produces<AdminEndpoints.DrainResponse>().ProducesProblem(401).ProducesProblem(403);
        MapModelPool(app);
        app.MapPost("/admin/cleanup", AdminEndpoints.Cleanup).WithTags("Admin")
            .WithSummary("Run the memory watchdog's cleanup now on every worker of this node, and say what it freed")
            .WithDescription("Needs an admin key. What the watchdog does at its cleanup mark: the router drops its answer cache and every " +
                             "worker of this node (in the server process and in its worker processes) releases idle memory, collects " +
                             "garbage and returns freed memory to the OS, between two steps. Per worker: its process (`pid`), its state, " +
                             "resident and managed bytes before and after; `freed_bytes` counts each process once. 503 naming the " +
                             "workers that did not answer within the status timeout.")
            .Produces<CleanupResponse>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(503);
        app.MapGet("/admin/faults", AdminEndpoints.GetFaults).WithTags("Admin")
            .WithSummary("The faults armed on every worker of this node")
            .WithDescription("Needs an admin key. Per worker: its faults (`hang_at_step` as its step number), its step count, and the bytes " +
                             "the leak fault holds.")
            .Produces<FaultsResponse>().ProducesProblem(401).ProducesProblem(403).ProducesProblem(503);
        app.MapPost("/admin/faults", AdminEndpoints.ArmFaults).WithTags("Admin")
            .WithSummary("Arm or disarm fault injection on every worker of this node while it runs")
            .WithDescription("Needs an admin key. The body replaces the armed faults; a field left out is off, so `{}` disarms them all. " +
                             "`leak_bytes_per_step` (bytes or a size such as \"64MiB\", up to 1GiB; 0 frees the leak), `step_delay_ms` " +
                             $"(up to {FaultsRequest.MaxStepDelayMs}), `oom_every_nth_step`, `crash_every_nth_step`, `hang_at_step` (the " +
                             "step that never returns, counted from now; the step timeout then acts). An unknown field or a bad value is " +
                             "a 400 naming it. A worker process that restarts starts again with the faults of its settings.")
            .Produces<FaultsResponse>().ProducesProblem(400).ProducesProblem(401).ProducesProblem(403).ProducesProblem(503);
        app.MapMetrics("/metrics", metrics.Registry).WithTags("Health").WithSummary("Prometheus metrics (text exposition format)");

        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapScalarApiReference("/docs", o => o.WithTitle("ActorQuery API").WithOpenApiRoutePattern("/openapi/{documentName}.json"));
        return app;
    }
}
