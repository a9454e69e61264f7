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
