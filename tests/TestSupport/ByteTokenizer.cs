using System.Text;
using ActorQuery.Tokenization;

namespace ActorQuery.TestSupport;

/// <summary>One token per UTF-8 byte (ids 0..255) plus an end-of-turn token 256; a tiny chat template of its own.</summary>
public sealed class ByteTokenizer : ITokenizer
{
    public const int EndOfTurn = 256;

    public int VocabSize => 257;
    public bool HasChatTemplate => true;
    public IReadOnlyList<int> EndOfTurnTokenIds => [EndOfTurn];

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false) =>
        Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) =>
        Encoding.UTF8.GetString(ids.Where(i => i < 256).Select(i => (byte)i).ToArray())
        + (skipSpecialTokens ? "" : string.Concat(ids.Where(i => i == EndOfTurn).Select(_ => "<|end|>")));

    public IStreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = true) => throw new NotSupportedException();

    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var sb = new StringBuilder();
        foreach (var m in messages) sb.Append('<').Append(m.Role).Append('>').Append(m.Content).Append('\n');
        if (addGenerationPrompt) sb.Append("<assistant>");
        return sb.ToString();
    }
}
