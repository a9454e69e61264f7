namespace ActorQuery.Tokenization;

/// <summary>
/// transformers' <c>clean_up_tokenization_spaces</c> (on in Llama 3's tokenizer_config): removes the space
/// before punctuation and English contractions when decoding. Hand-written: it is a Python string replace chain.
/// </summary>
internal static class SpaceCleanup
{
    private static readonly (string From, string To)[] Rules =
    [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
        (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ];

    /// <summary>The longest rule; a streaming decoder holds back this many characters after a space.</summary>
    public const int LongestPattern = 4;

    public static string Apply(string text)
    {
        if (!text.Contains(' ')) return text;
        foreach (var (from, to) in Rules) text = text.Replace(from, to, StringComparison.Ordinal);
        return text;
    }
}
