using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace ActorQuery.Api.Docs;

/// <summary>The OpenAPI document's title and description, and the examples attached to each operation.</summary>
internal static class ApiDocs
{
    public static void Configure(OpenApiOptions options)
    {
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info = new OpenApiInfo
            {
                Title = "ActorQuery",
                Version = "v1",
                Description = "Language-model inference over HTTP: a native `/query` endpoint and OpenAI-compatible " +
                              "`/v1/chat/completions`, `/v1/completions`, `/v1/responses` and `/v1/models`, plus health, memory and metrics.",
            };
            // The key as Scalar's "Authentication" box sends it, so that /docs can try the endpoints of a server with keys.
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes["apiKey"] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "An API key (--api-key) when the server has keys; /health/live, /health/ready and /metrics never need one, " +
                              "/admin/* needs an admin key (--admin-key).",
            };
            document.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("apiKey", document)] = [] }];
            // /metrics is mapped by prometheus-net, not as a minimal-API handler, so the generator does not see it.
            document.Paths ??= new OpenApiPaths();
            document.Paths["/metrics"] = new OpenApiPathItem
            {
                Operations = new Dictionary<HttpMethod, OpenApiOperation>
                {
                    [HttpMethod.Get] = new()
                    {
                        Summary = "Prometheus metrics (text exposition format)",
                        Tags = new HashSet<OpenApiTagReference> { new("Health", document) },
                        Responses = new OpenApiResponses
                        {
                            ["200"] = new OpenApiResponse
                            {
                                Description = "actorquery_* counters, gauges and histograms",
                                Content = new Dictionary<string, OpenApiMediaType>
                                {
                                    ["text/plain"] = new() { Example = JsonValue.Create("actorquery_requests_total{endpoint=\"/query\",status=\"200\"} 42") },
                                },
                            },
                        },
                    },
                },
            };
            return Task.CompletedTask;
        });
    }

    /// <summary>
    /// Sets the request body example and the 200 response example of one operation, and, for endpoints that can
    /// stream, documents the <c>text/event-stream</c> answer with an example of its events.
    /// </summary>
    public static Func<OpenApiOperation, OpenApiOperationTransformerContext, CancellationToken, Task> Examples(
        string? request, string? response, string? stream = null) =>
        (operation, _, _) =>
        {
            if (request is not null && operation.RequestBody?.Content is { } content)
                foreach (var media in content.Values) media.Example = JsonNode.Parse(request);
            if (operation.Responses is { } responses && responses.TryGetValue("200", out var ok) && ok.Content is { } okContent)
            {
                if (response is not null && okContent.TryGetValue("application/json", out var json))
                    json.Example = JsonNode.Parse(response);
                if (stream is not null)
                    okContent["text/event-stream"] = new OpenApiMediaType
                    {
                        Schema = new OpenApiSchema { Type = JsonSchemaType.String },
                        Example = JsonValue.Create(stream),
                    };
            }
            return Task.CompletedTask;
        };
}
