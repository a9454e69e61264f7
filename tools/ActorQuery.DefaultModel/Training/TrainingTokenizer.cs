using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ActorQuery.DefaultModel.Training;

/// <summary>
/// The default model's tokenizer as training builds it: Qwen2-style byte-level BPE with the 256 byte tokens
/// (GPT-2's byte-to-unicode map, in GPT-2's order), merges that make the prompts' frequent words single tokens,
/// every 1-, 2- and 3-digit string as one token, and the three ChatML special tokens at the end.
/// Numbers are split into groups of three digits from the right (1707 → "1" "707", like a thousands
/// separator), so every operand 0–999 is one token and a token's embedding can carry its digits' place values.
/// Qwen's own pre-tokenizer splits every digit on its own instead; with single digits a small model must first
/// learn to find the units, tens and hundreds digit of each operand by position, and after an hour of CPU
/// training it still got the last digits wrong (4.8% held-out accuracy). The split stays a plain Split regex
/// (lookahead, which Hugging Face's Oniguruma and .NET both support), so the folder loads like any Qwen2 one.
/// Encoding is written here by hand, because training needs ids before the serving tokenizer exists and
/// because the file it writes must be exactly what it encodes with; the DefaultModel tests check that the
/// serving tokenizer (HfTokenizer) gives the same ids for the training strings.
/// </summary>
public sealed partial class TrainingTokenizer
{
    /// <summary>Qwen2's pre-tokenizer regex, except that a number splits into groups of three digits from the right
    /// (Qwen2: one digit per piece).</summary>
    public const string PreTokenizerPattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static readonly string[] SpecialTokens = [ArithmeticTask.EndOfText, ArithmeticTask.ImStart, ArithmeticTask.ImEnd];

    [GeneratedRegex(PreTokenizerPattern)]
    private static partial Regex PreTokenizer();

    [GeneratedRegex(@"<\|endoftext\|>|<\|im_start\|>|<\|im_end\|>")]
    private static partial Regex SpecialSplitter();

    private static readonly char[] ByteToChar = BuildByteToChar();
    private readonly List<string> _vocab = [];
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    private readonly List<(string Left, string Right)> _merges = [];
    private readonly Dictionary<(string, string), int> _mergeRank = [];

    public int VocabSize => _vocab.Count;

    /// <summary>Every token that is a string of 1–3 digits, with that string.</summary>
    public IEnumerable<(int Id, string Digits)> NumberTokens() =>
        _vocab.Select((t, id) => (id, t)).Where(x => x.t.Length is >= 1 and <= 3 && x.t.All(char.IsAsciiDigit));
    public int EndOfTextId => _ids[ArithmeticTask.EndOfText];
    public int ImStartId => _ids[ArithmeticTask.ImStart];
    public int ImEndId => _ids[ArithmeticTask.ImEnd];

    private TrainingTokenizer(IEnumerable<string> mergedWords)
    {
        foreach (var c in ByteToChar.OrderBy(GptOrder)) Add(c.ToString());
        foreach (var word in mergedWords)
        {
            // A chain of merges that builds the word left to right: (w0,w1) → w0w1, (w0w1,w2) → w0w1w2, ...
            string mapped = MapBytes(word);
            string left = mapped[..1];
            for (int i = 1; i < mapped.Length; i++)
            {
                string right = mapped[i].ToString();
                AddMerge(left, right);
                left += right;
            }
        }
        // Every 2- and 3-digit string (leading zeros included: the low group of 1005 is "005"). A 3-digit string
        // has two merge paths, ("12","3") and ("1","23"), because which 2-digit pair merges first depends on
        // the pairs' ranks; with both, every group of three ends as one token.
        for (int a = 0; a < 10; a++)
            for (int b = 0; b < 10; b++)
                AddMerge($"{a}", $"{b}");
        for (int a = 0; a < 10; a++)
            for (int b = 0; b < 10; b++)
                for (int c = 0; c < 10; c++)
                {
                    AddMerge($"{a}{b}", $"{c}");
                    AddMerge($"{a}", $"{b}{c}");
                }
        foreach (var s in SpecialTokens) Add(s);
    }

    private void AddMerge(string left, string right)
    {
        if (!_mergeRank.TryAdd((left, right), _merges.Count)) return;
        _merges.Add((left, right));
        if (!_ids.ContainsKey(left + right)) Add(left + right);
    }

    /// <summary>The tokenizer of the default model: merges for every multi-character pre-token of the
    /// task's phrasings (apart from digits), so each word is one token.</summary>
    public static TrainingTokenizer CreateDefault()
    {
        var words = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var rng = new Random(12345);
        void Count(string text)
        {
            foreach (var piece in SpecialSplitter().Split(text))
                foreach (Match m in PreTokenizer().Matches(piece))
                    if (Encoding.UTF8.GetByteCount(m.Value) > 1 && !m.Value.Any(char.IsDigit))
                        words[m.Value] = words.GetValueOrDefault(m.Value) + 1;
        }
        for (int i = 0; i < 20000; i++)
        {
            var e = ArithmeticTask.NextTraining(rng);
            Count(e.Prompt); // not the completion: it is encoded on its own, as serving sees it
        }
        foreach (var s in ArithmeticTask.SystemMessages) Count(ArithmeticTask.RenderChat("x", s));
        // Most frequent first, so that frequent words get the low (preferred) merge ranks.
        return new TrainingTokenizer(words.Where(w => w.Value >= 5).OrderByDescending(w => w.Value).ThenBy(w => w.Key, StringComparer.Ordinal).Select(w => w.Key));
    }

    public IReadOnlyList<int> Encode(string text)
    {
        var ids = new List<int>();
        int pos = 0;
        foreach (Match special in SpecialSplitter().Matches(text))
        {
            EncodeOrdinary(text[pos..special.Index], ids);
            ids.Add(_ids[special.Value]);
            pos = special.Index + special.Length;
        }
        EncodeOrdinary(text[pos..], ids);
        return ids;
    }

    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            string tok = _vocab[id];
            if (SpecialTokens.Contains(tok)) { bytes.AddRange(Encoding.UTF8.GetBytes(tok)); continue; }
            foreach (var c in tok) bytes.Add((byte)Array.IndexOf(ByteToChar, c));
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private void EncodeOrdinary(string text, List<int> ids)
    {
        if (text.Length == 0) return;
        text = text.Normalize(NormalizationForm.FormC);
        foreach (Match m in PreTokenizer().Matches(text))
        {
            // HF BPE: repeatedly merge the adjacent pair of lowest rank (leftmost on ties), one pair at a time.
            var parts = MapBytes(m.Value).Select(c => c.ToString()).ToList();
            while (parts.Count > 1)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < parts.Count; i++)
                    if (_mergeRank.TryGetValue((parts[i], parts[i + 1]), out var r) && r < bestRank) { bestRank = r; best = i; }
                if (best < 0) break;
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }
            foreach (var p in parts) ids.Add(_ids[p]);
        }
    }

    /// <summary>tokenizer.json in Hugging Face format, shaped like Qwen2's.</summary>
    public string ToTokenizerJson()
    {
        var vocab = new JsonObject();
        for (int i = 0; i < _vocab.Count; i++)
            if (!SpecialTokens.Contains(_vocab[i])) vocab[_vocab[i]] = i;
        var merges = new JsonArray(_merges.Select(m => (JsonNode)new JsonArray(m.Left, m.Right)).ToArray());
        var added = new JsonArray(SpecialTokens.Select(s => (JsonNode)new JsonObject
        {
            ["id"] = _ids[s], ["content"] = s, ["single_word"] = false, ["lstrip"] = false,
            ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
        }).ToArray());
        JsonObject ByteLevel() => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false };
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split",
                        ["pattern"] = new JsonObject { ["Regex"] = PreTokenizerPattern },
                        ["behavior"] = "Isolated",
                        ["invert"] = false,
                    },
                    ByteLevel()),
            },
            ["post_processor"] = ByteLevel(),
            ["decoder"] = ByteLevel(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "", ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = merges,
            },
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    /// <summary>tokenizer_config.json: ChatML template, &lt;|im_end|&gt; ends a turn, no BOS.</summary>
    public string ToTokenizerConfigJson()
    {
        var decoder = new JsonObject();
        foreach (var s in SpecialTokens)
            decoder[_ids[s].ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = s, ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false, ["special"] = true,
            };
        var root = new JsonObject
        {
            ["add_bos_token"] = false,
            ["add_prefix_space"] = false,
            ["added_tokens_decoder"] = decoder,
            ["additional_special_tokens"] = new JsonArray(ArithmeticTask.ImStart, ArithmeticTask.ImEnd),
            ["bos_token"] = null,
            ["chat_template"] = ArithmeticTask.ChatTemplate,
            ["clean_up_tokenization_spaces"] = false,
            ["eos_token"] = ArithmeticTask.ImEnd,
            ["errors"] = "replace",
            ["model_max_length"] = 512,
            ["pad_token"] = ArithmeticTask.EndOfText,
            ["split_special_tokens"] = false,
            ["tokenizer_class"] = "Qwen2Tokenizer",
            ["unk_token"] = null,
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    private void Add(string token) { _ids[token] = _vocab.Count; _vocab.Add(token); }

    private static string MapBytes(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    /// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n.</summary>
    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
            map[b] = IsPrintable(b) ? (char)b : (char)(256 + n++);
        return map;
    }

    private static bool IsPrintable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    /// <summary>GPT-2 vocab order: printable bytes first (by byte), then the others (by byte).</summary>
    private static int GptOrder(char c)
    {
        int b = Array.IndexOf(ByteToChar, c);
        return IsPrintable(b) ? b : 1000 + b;
    }
}
