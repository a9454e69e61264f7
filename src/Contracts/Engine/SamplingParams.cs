using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Contracts;

/// <summary>
/// How one sequence picks its next token, and when it stops. Immutable; validated by <see cref="Validate"/>,
/// which names the offending field so that the API can answer 400 with it.
/// </summary>
public sealed record SamplingParams
{
    /// <summary>0 means greedy (argmax); otherwise logits are divided by it before softmax.</summary>
    public float Temperature { get; init; }
    /// <summary>Keep only the K most likely tokens; 0 disables.</summary>
    public int TopK { get; init; }
    /// <summary>Nucleus sampling: keep the smallest set whose probability mass reaches P; 1 disables.</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Drop tokens whose probability is below MinP × the top token's probability; 0 disables.</summary>
    public float MinP { get; init; }
    /// <summary>CTRL-style penalty on tokens seen in prompt or output (HF semantics); 1 disables.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>OpenAI semantics: subtracted once from the logit of every token already generated.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>OpenAI semantics: subtracted per occurrence of a token already generated.</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>Same seed and request give the same tokens. Null: a random seed.</summary>
    public long? Seed { get; init; }
    public int MaxNewTokens { get; init; } = 128;
    /// <summary>Stop tokens are ignored until this many tokens were generated (vLLM's min_tokens).</summary>
    public int MinNewTokens { get; init; }
    /// <summary>Keep generating past EOS / stop tokens (benchmarks fix output lengths with it).</summary>
    public bool IgnoreEos { get; init; }
    /// <summary>Extra stop token ids beside the model's own end-of-sequence / end-of-turn tokens.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = Array.Empty<int>();
    /// <summary>Return the chosen token's log-probability (and this many alternatives, 0..20).</summary>
    public bool Logprobs { get; init; }
    public int TopLogprobs { get; init; }
    /// <summary>The whole output must satisfy this (a JSON Schema, any JSON object, a regex, one of some choices):
    /// tokens that would break it are masked before each draw, and end-of-sequence is allowed only where the output
    /// is complete. Carried as text; each engine compiles it against its vocabulary. Null: unconstrained.</summary>
    public OutputConstraint? Constraint { get; init; }
    /// <summary>OpenAI's <c>logit_bias</c>: token id → a number in [-100, 100] added to that token's logit before the
    /// penalties and the draw. -100 all but bans the token, 100 all but forces it. Null or empty: none.</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    /// <summary>Most entries a <see cref="LogitBias"/> may hold (OpenAI's limit).</summary>
    public const int MaxLogitBias = 300;

    /// <summary>Greedy or seeded: the same request always yields the same tokens, so answers can be cached.</summary>
    public bool IsDeterministic => Temperature == 0f || Seed is not null;

    public static SamplingParams Greedy(int maxNewTokens) => new() { MaxNewTokens = maxNewTokens };

    /// <summary>Throws <see cref="ArgumentException"/> whose ParamName is the field at fault.</summary>
    public void Validate()
    {
        if (!float.IsFinite(Temperature) || Temperature < 0f)
            throw new ArgumentException("must be a finite number >= 0", "temperature");
        if (TopK < 0) throw new ArgumentException("must be >= 0", "top_k");
        if (!(TopP > 0f && TopP <= 1f)) throw new ArgumentException("must be in (0, 1]", "top_p");
        if (!(MinP >= 0f && MinP <= 1f)) throw new ArgumentException("must be in [0, 1]", "min_p");
        if (!float.IsFinite(RepetitionPenalty) || RepetitionPenalty <= 0f)
            throw new ArgumentException("must be a finite number > 0", "repetition_penalty");
        if (!float.IsFinite(PresencePenalty) || PresencePenalty < -2f || PresencePenalty > 2f)
            throw new ArgumentException("must be in [-2, 2]", "presence_penalty");
        if (!float.IsFinite(FrequencyPenalty) || FrequencyPenalty < -2f || FrequencyPenalty > 2f)
            throw new ArgumentException("must be in [-2, 2]", "frequency_penalty");
        if (MaxNewTokens < 1) throw new ArgumentException("must be >= 1", "max_new_tokens");
        if (MinNewTokens < 0 || MinNewTokens > MaxNewTokens)
            throw new ArgumentException("must be in [0, max_new_tokens]", "min_tokens");
        if (TopLogprobs < 0 || TopLogprobs > 20) throw new ArgumentException("must be in [0, 20]", "top_logprobs");
        if (LogitBias is { } bias)
        {
            if (bias.Count > MaxLogitBias) throw new ArgumentException($"at most {MaxLogitBias} tokens", "logit_bias");
            foreach (var (id, b) in bias)
            {
                if (id < 0) throw new ArgumentException($"token id {id} is negative", "logit_bias");
                if (!float.IsFinite(b) || b < -100f || b > 100f)
                    throw new ArgumentException($"the bias of token {id} must be in [-100, 100]", "logit_bias");
            }
        }
    }
}
