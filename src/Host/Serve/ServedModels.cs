using ActorQuery.Api;
using ActorQuery.Inference.Checkpoint;
using ActorQuery.Tokenization;

namespace ActorQuery.Host.Serve;

/// <summary>Builds the API's <see cref="IServedModel"/> from a Hugging Face model folder.</summary>
public static class ServedModels
{
    /// <summary>Name: the folder's name (what clients send as <c>model</c>); context: config.json's max_position_embeddings.</summary>
    public static IServedModel FromFolder(string folder, ITokenizer tokenizer, string? name = null)
    {
        string full = Path.GetFullPath(folder);
        var config = ModelConfig.Load(Path.Combine(full, "config.json"));
        return new ServedModel(string.IsNullOrEmpty(name) ? NameOf(full) : name, config.MaxPositionEmbeddings, tokenizer, DateTimeOffset.UtcNow);
    }

    public static string NameOf(string folder) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
}
