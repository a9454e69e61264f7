using System.Text.RegularExpressions;

namespace ActorQuery.Tokenization;

/// <summary>
/// Hugging Face's <c>Split</c> pre-tokenizer with behaviour "Isolated", applied stage after stage for a
/// <c>Sequence</c>: every regex match becomes a word, and so does every stretch between matches. Each stage sees
/// one piece of the previous stage as its whole input (lookarounds stop at the piece's edges), as in Hugging Face.
/// </summary>
internal sealed class SplitPreTokenizer(IReadOnlyList<Regex> stages)
{
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
        // EnumerateMatches allocates no Match objects; the span is the piece, so lookarounds end at its edges.
        foreach (var m in regex.EnumerateMatches(text.AsSpan(offset, length)))
        {
            if (m.Length == 0) continue;
            if (m.Index > at) output(offset + at, m.Index - at);
            output(offset + m.Index, m.Length);
            at = m.Index + m.Length;
        }
        if (at < length) output(offset + at, length - at);
    }
}
