using ActorQuery.Tokenization;

namespace ActorQuery.Api;

/// <summary>
/// The model this server answers with, as the HTTP layer needs it: the name clients send as <c>model</c>,
/// the context length that bounds prompt + new tokens, and the tokenizer that turns prompts and chat
/// messages into the token ids the actors take. The Host builds it from the model folder.
/// </summary>
public interface IServedModel
{
    string Name { get; }
    int ContextLength { get; }
    ITokenizer Tokenizer { get; }
    /// <summary>When the model was loaded (OpenAI's <c>created</c> field of /v1/models).</summary>
    DateTimeOffset CreatedAt { get; }
}

/// <summary>The plain implementation of <see cref="IServedModel"/>.</summary>
public sealed record ServedModel(string Name, int ContextLength, ITokenizer Tokenizer, DateTimeOffset CreatedAt) : IServedModel;

/// <summary>
/// Every model this server answers for: one, or the models of its pool (<c>--model NAME=DIR</c>, <c>--models-dir</c>).
/// A request names one as <c>model</c>; none (or "default") gets <see cref="Default"/>.
/// </summary>
public interface IServedModels
{
    IServedModel Default { get; }
    IReadOnlyList<IServedModel> All { get; }
    /// <summary>True when the models are a pool: loaded on demand, the request's model goes to the router.</summary>
    bool IsPool { get; }
}

/// <summary>The plain implementation of <see cref="IServedModels"/>.</summary>
public sealed record ServedModelSet(IServedModel Default, IReadOnlyList<IServedModel> All, bool IsPool) : IServedModels
{
    public static ServedModelSet Single(IServedModel model) => new(model, [model], false);
}

public static class ServedModelsExtensions
{
    /// <summary>The model a request names (null, empty or "default": the default one); an unknown name is a 404 that lists
    /// the served ones, so that a typo does not silently use another model (vLLM does the same).</summary>
    public static IServedModel Resolve(this IServedModels models, string? name)
    {
        if (string.IsNullOrEmpty(name) || name == "default") return models.Default;
        return models.All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
               ?? throw new Errors.ApiException(404, "model",
                   $"model: '{name}' is not served here (served: {string.Join(", ", models.All.Select(m => m.Name))})", "model_not_found");
    }
}
