using ActorQuery.Contracts;

namespace ActorQuery.Api.Generation;

/// <summary>What one HTTP request asks the actors for, after validation and tokenisation.</summary>
/// <param name="MaxTokensField">The request's name for the token budget, so that a later 413 can name it.</param>
internal sealed record GenerationJob(
    string RequestId, IReadOnlyList<int> PromptIds, SamplingParams Sampling, IReadOnlyList<string> Stop,
    TimeSpan? Timeout, string MaxTokensField);
