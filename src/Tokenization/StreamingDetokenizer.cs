using System.Text;

namespace ActorQuery.Tokenization;

/// <summary>
/// Decodes one sequence's tokens as they arrive. Tokens become bytes (as <see cref="HfTokenizer.Decode"/> does)
/// and go through one UTF-8 <see cref="Decoder"/>, which keeps the first bytes of a character that is not complete
/// yet (a Chinese character or an emoji often spans two or three tokens) until the rest arrives; so chunks never
/// hold a broken character, and their concatenation equals the whole-sequence decode.
/// </summary>
internal sealed class StreamingDetokenizer(HfTokenizer tokenizer, bool skipSpecialTokens, bool cleanUpSpaces) : IStreamingDetokenizer
{
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private readonly char[] _chars = new char[64];
    // Only with clean_up_tokenization_spaces: text after a late space, held until we know whether " ." etc. follows.
    private string _pending = "";

    public string Push(int tokenId)
    {
        var bytes = tokenizer.TokenBytes(tokenId, skipSpecialTokens);
        return bytes is null ? "" : Emit(DecodeBytes(bytes, flush: false), final: false);
    }

    public string Flush() => Emit(DecodeBytes([], flush: true), final: true);

    private string DecodeBytes(byte[] bytes, bool flush)
    {
        var sb = new StringBuilder();
        int offset = 0;
        bool completed;
        do
        {
            _utf8.Convert(bytes, offset, bytes.Length - offset, _chars, 0, _chars.Length, flush, out int used, out int produced, out completed);
            sb.Append(_chars, 0, produced);
            offset += used;
        } while (!completed);
        return sb.ToString();
    }

    private string Emit(string text, bool final)
    {
        if (!cleanUpSpaces) return text;
        var all = _pending + text;
        int cut = all.Length;
        if (!final)
        {
            // A cleanup rule starts with a space and is at most LongestPattern long: keep back a late space and what follows.
            int space = all.LastIndexOf(' ');
            if (space >= 0 && all.Length - space <= SpaceCleanup.LongestPattern) cut = space;
        }
        _pending = all[cut..];
        return SpaceCleanup.Apply(all[..cut]);
    }
}
