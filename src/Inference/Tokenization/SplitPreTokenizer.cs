using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace ActorQuery.Inference.Tokenization;

/// <summary>
/// Hugging Face's <c>Split</c> pre-tokenizer with behaviour "Isolated", applied stage after stage for a
/// <c>Sequence</c>: every regex match becomes a piece, and so does every stretch between matches.
/// Written by hand because Microsoft.ML.Tokenizers' RegexPreTokenizer yields only the matches (text that no
/// alternative matches would be dropped) and runs one regex, not a sequence.
/// </summary>
internal sealed class SplitPreTokenizer(IReadOnlyList<Regex> stages) : PreTokenizer
{
    /// <summary>No splitting: the whole text is one word (a tokenizer.json without a pre-tokenizer).</summary>
    public static readonly SplitPreTokenizer WholeText = new([]);

    public IReadOnlyList<Regex> Stages { get; } = stages;

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
    {
        if (string.IsNullOrEmpty(text)) return [];
        IEnumerable<(int Offset, int Length)> pieces = [(0, text.Length)];
        foreach (var regex in Stages) pieces = SplitAll(regex, text, pieces);
        return pieces;
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) =>
        PreTokenize(text.ToString());

    private static IEnumerable<(int Offset, int Length)> SplitAll(Regex regex, string text, IEnumerable<(int Offset, int Length)> pieces)
    {
        foreach (var (offset, length) in pieces)
        {
            int at = offset, end = offset + length;
            // Regex.Match(text, beginning, length) treats the piece as the whole input (lookarounds stop at its edges),
            // as Hugging Face does when it runs the next stage on each piece on its own.
            for (var m = regex.Match(text, offset, length); m.Success; m = m.NextMatch())
            {
                if (m.Length == 0) continue;
                if (m.Index > at) yield return (at, m.Index - at);
                yield return (m.Index, m.Length);
                at = m.Index + m.Length;
            }
            if (at < end) yield return (at, end - at);
        }
    }
}
