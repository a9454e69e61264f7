namespace ActorQuery.Tokenization;

/// <summary>
/// GPT-2's reversible byte ↔ printable-character table that byte-level BPE vocabularies are written in
/// (byte 0x20 ' ' is 'Ġ', 0x0A is 'Ċ'). Hand-written (20 lines) because the libraries that apply it keep it
/// internal, and decoding must reach raw bytes: the streaming detokenizer holds back a partial UTF-8 character.
/// </summary>
internal static class ByteLevel
{
    private static readonly char[] ByteToChar = BuildTable();
    private static readonly Dictionary<char, byte> CharToByte = BuildInverse();

    private static char[] BuildTable()
    {
        var table = new char[256];
        var printable = new bool[256];
        for (int b = '!'; b <= '~'; b++) printable[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
        int next = 256;
        for (int b = 0; b < 256; b++) table[b] = printable[b] ? (char)b : (char)next++;
        return table;
    }

    private static Dictionary<char, byte> BuildInverse()
    {
        var map = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++) map[ByteToChar[b]] = (byte)b;
        return map;
    }

    /// <summary>The vocabulary character for one byte.</summary>
    public static char Char(byte b) => ByteToChar[b];

    /// <summary>The vocabulary spelling of one byte.</summary>
    public static string Encode(byte b) => ByteToChar[b].ToString();

    /// <summary>The vocabulary spelling of a piece of text: its UTF-8 bytes, one table character each.</summary>
    public static string Encode(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (span, b) =>
        {
            for (int i = 0; i < b.Length; i++) span[i] = ByteToChar[b[i]];
        });
    }

    /// <summary>
    /// The bytes a token stands for, as Hugging Face's ByteLevel decoder computes them: every character
    /// through the table, or, when one character is not in it (an added token such as "&lt;|im_end|&gt;"
    /// spelled with other characters), the token's own UTF-8 bytes.
    /// </summary>
    public static byte[] TokenBytes(string token)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            if (!CharToByte.TryGetValue(token[i], out bytes[i])) return System.Text.Encoding.UTF8.GetBytes(token);
        }
        return bytes;
    }
}
