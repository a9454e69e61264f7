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
                              "`/v1/chat/completions`, `/v1/completions` and `/v1/models`, plus health, memory and metrics.",
            };
            return Task.CompletedTask;
        });
    }

    /// <summary>Sets the request body example and the 200 response example of one operation.</summary>
    public static Func<OpenApiOperation, OpenApiOperationTransformerContext, CancellationToken, Task> Examples(string? request, string? response) =>
        (operation, _, _) =>
        {
            if (request is not null && operation.RequestBody?.Content is { } content)
                foreach (var media in content.Values) media.Example = JsonNode.Parse(request);
            if (response is not null && operation.Responses is { } responses && responses.TryGetValue("200", out var ok)
                && ok.Content is { } okContent && okContent.TryGetValue("application/json", out var json))
                json.Example = JsonNode.Parse(response);
            return Task.CompletedTask;
        };
}
