using System.Text.RegularExpressions;

namespace ActorQuery.Tokenization;

/// <summary>
/// Hugging Face's <c>Split</c> pre-tokenizer with behaviour "Isolated", applied stage after stage for a
/// <c>Sequence</c>: every regex match becomes a word, and so does every stretch between matches. Each stage sees
/// one piece of the previous stage as its whole input (lookarounds stop at the piece's edges), as in Hugging Face.
/// </summary>
internal sealed class SplitPreTokenizer(IReadOnlyList<Regex> stages)
{
    /// <summary>How long one match of a tokenizer.json regex may take. The pattern comes from the model folder, and one
    /// that backtracks catastrophically would hang the request (and its thread) forever; real pre-tokenizer patterns
    /// find a match in microseconds, so a second means the pattern, not the text, is at fault.</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);

    public IReadOnlyList<Regex> Stages { get; } = stages;

    /// <summary>Calls <paramref name="onWord"/> with the (offset, length) of each word of <paramref name="text"/>, in order.</summary>
    public void Split(string text, Action<int, int> onWord)
    {
        if (text.Length == 0) return;
        if (Stages.Count == 0)
        {
            onWord(0, text.Length);
            return;
        }
        // All stages but the last collect their pieces; the last streams its words (no list of a million words).
        var pieces = new List<(int Offset, int Length)> { (0, text.Length) };
        for (int s = 0; s < Stages.Count - 1; s++)
        {
            var next = new List<(int Offset, int Length)>();
            foreach (var (offset, length) in pieces) SplitPiece(Stages[s], text, offset, length, (o, l) => next.Add((o, l)));
            pieces = next;
        }
        foreach (var (offset, length) in pieces) SplitPiece(Stages[^1], text, offset, length, onWord);
    }

    private static void SplitPiece(Regex regex, string text, int offset, int length, Action<int, int> output)
    {
        int at = 0;
        try
        {
            // EnumerateMatches allocates no Match objects; the span is the piece, so lookarounds end at its edges.
            foreach (var m in regex.EnumerateMatches(text.AsSpan(offset, length)))
            {
                if (m.Length == 0) continue;
                if (m.Index > at) output(offset + at, m.Index - at);
                output(offset + m.Index, m.Length);
                at = m.Index + m.Length;
            }
        }
        catch (RegexMatchTimeoutException e)
        {
            throw new InvalidOperationException(
                $"tokenizer.json: the pre-tokenizer regex '{regex}' took longer than {e.MatchTimeout.TotalSeconds:0.###} s on one match " +
                "(it backtracks catastrophically on this text); fix the pattern in the model folder", e);
        }
        if (at < length) output(offset + at, length - at);
    }
}
