using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ActorQuery.Tokenization;

/// <summary>
/// A Hugging Face byte-level BPE tokenizer (Qwen2/Qwen2.5/Qwen3, Llama 3, GPT-2) loaded from tokenizer.json and
/// tokenizer_config.json, following Hugging Face's pipeline: added tokens are matched in the raw text, the rest is
/// normalised (NFC for Qwen), split by the pre-tokenizer regex, and each word goes through byte-level BPE
/// (<see cref="BpeModel"/>); the post-processor adds BOS where the model wants it (Llama 3). Microsoft.ML.Tokenizers
/// was tried first and gives the same ids, but is too slow on Chinese (see <see cref="BpeModel"/>).
/// </summary>
public sealed class HfTokenizer : ITokenizer
{
    /// <summary>Tokens that end a turn or the text in the model families we serve, used when the vocabulary has them.</summary>
    private static readonly string[] EndOfTurnNames = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"];

    private readonly BpeModel _bpe;
    private readonly SplitPreTokenizer _preTokenizer;
    private readonly Dictionary<string, int> _vocab;
    private readonly bool _addPrefixSpace;
    private readonly NormalizationForm? _normalization;
    private readonly Regex? _addedTokenPattern;
    private readonly Dictionary<string, int> _addedTokens;
    private readonly byte[]?[] _tokenBytes;
    private readonly bool[] _isSpecial;
    private readonly int[] _prefixIds;
    private readonly int[] _suffixIds;
    private readonly bool _cleanUpSpaces;
    private readonly ChatTemplate? _chatTemplate;
    private readonly string? _chatTemplateError;

    public int VocabSize => _tokenBytes.Length;

    public IReadOnlyList<int> EndOfTurnTokenIds { get; }

    /// <summary>The BOS token's id when the model has one (tokenizer_config's bos_token).</summary>
    public int? BosTokenId { get; }

    /// <summary>The EOS token's id when the model has one (tokenizer_config's eos_token).</summary>
    public int? EosTokenId { get; }

    public bool HasChatTemplate => _chatTemplate is not null;

    public bool ChatTemplateSupportsTools => _chatTemplate?.SupportsTools == true;

    public ToolCallFormat ChatTemplateToolCallFormat => _chatTemplate?.ToolCallFormat ?? ToolCallFormat.Tagged;

    /// <summary>Loads from a model folder, or from a tokenizer.json whose folder holds tokenizer_config.json.</summary>
    public static HfTokenizer FromPath(string modelFolderOrTokenizerJson) => new(TokenizerFiles.Read(modelFolderOrTokenizerJson));

    /// <summary>Builds the tokenizer from the files' text. Throws <see cref="InvalidDataException"/> for malformed files
    /// and <see cref="NotSupportedException"/> for tokenizers that are not byte-level BPE, naming the file and field.</summary>
    public HfTokenizer(TokenizerFiles files)
    {
        ArgumentNullException.ThrowIfNull(files);
        try
        {
            using var tokenizerDoc = TokenizerFiles.Parse(files.TokenizerJson, "tokenizer.json");
            using var configDoc = files.TokenizerConfigJson is null ? null : TokenizerFiles.Parse(files.TokenizerConfigJson, "tokenizer_config.json");
            var root = tokenizerDoc.RootElement;
            var config = configDoc?.RootElement;

            var model = Required(root, "model", "tokenizer.json");
            var modelType = model.TryGetProperty("type", out var t) ? t.GetString() : "BPE";
            if (modelType != "BPE")
                throw new NotSupportedException($"tokenizer.json: model type '{modelType}' is not supported (only byte-level BPE)");
            if (!IsByteLevel(root, "decoder"))
                throw new NotSupportedException("tokenizer.json: only the ByteLevel decoder is supported (byte-level BPE as in Qwen, Llama 3, GPT-2)");

            var vocab = new Dictionary<string, int>();
            foreach (var p in Required(model, "vocab", "tokenizer.json model").EnumerateObject()) vocab[p.Name] = p.Value.GetInt32();
            var merges = new List<(string, string)>();
            foreach (var m in Required(model, "merges", "tokenizer.json model").EnumerateArray())
            {
                if (m.ValueKind == JsonValueKind.Array) merges.Add((m[0].GetString()!, m[1].GetString()!));
                else
                {
                    // The older form "left right"; byte-level tokens never contain a plain space.
                    var parts = m.GetString()!.Split(' ');
                    if (parts.Length != 2) throw new InvalidDataException($"tokenizer.json: merge '{m.GetString()}' is not 'left right'");
                    merges.Add((parts[0], parts[1]));
                }
            }
            bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;

            (_preTokenizer, _addPrefixSpace) = ReadPreTokenizer(root);
            _normalization = ReadNormalizer(root);
            _vocab = vocab;
            _bpe = new BpeModel(vocab, merges, ignoreMerges);

            // Added tokens: matched in the raw text, longest first (Hugging Face matches leftmost-longest).
            _addedTokens = new Dictionary<string, int>(StringComparer.Ordinal);
            var specialIds = new HashSet<int>();
            var alternatives = new List<(string Content, string Pattern)>();
            if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            {
                foreach (var a in added.EnumerateArray())
                {
                    var content = a.GetProperty("content").GetString()!;
                    var id = a.GetProperty("id").GetInt32();
                    _addedTokens[content] = id;
                    if (Bool(a, "special")) specialIds.Add(id);
                    var pattern = Regex.Escape(content);
                    if (Bool(a, "single_word")) pattern = $@"(?<!\w){pattern}(?!\w)";
                    if (Bool(a, "lstrip")) pattern = @"\s*" + pattern;
                    if (Bool(a, "rstrip")) pattern += @"\s*";
                    alternatives.Add((content, pattern));
                }
            }
            if (alternatives.Count > 0)
            {
                var ordered = alternatives.OrderByDescending(x => x.Content.Length).Select(x => x.Pattern);
                _addedTokenPattern = new Regex(string.Join("|", ordered), RegexOptions.Compiled | RegexOptions.CultureInvariant);
            }

            int size = Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max() + 1, _addedTokens.Count == 0 ? 0 : _addedTokens.Values.Max() + 1);
            _tokenBytes = new byte[]?[size];
            _isSpecial = new bool[size];
            foreach (var (token, id) in vocab) _tokenBytes[id] = ByteLevel.TokenBytes(token);
            foreach (var (token, id) in _addedTokens) _tokenBytes[id] = ByteLevel.TokenBytes(token);
            foreach (var id in specialIds) _isSpecial[id] = true;

            // BOS/EOS: the post-processor's template (Llama 3) and/or tokenizer_config's add_bos_token (Qwen: false).
            (_prefixIds, _suffixIds) = ReadPostProcessor(root);
            string? ConfigToken(string name) => config is { } c ? TokenName(c, name) : null;
            var bos = ConfigToken("bos_token");
            var eos = ConfigToken("eos_token");
            BosTokenId = bos is not null && TryTokenToId(bos, out var bosId) ? bosId : null;
            EosTokenId = eos is not null && TryTokenToId(eos, out var eosId) ? eosId : null;
            if (config is { } c1 && Bool(c1, "add_bos_token") && BosTokenId is { } b && !_prefixIds.Contains(b))
                _prefixIds = [b, .. _prefixIds];
            _cleanUpSpaces = config is { } c2 && Bool(c2, "clean_up_tokenization_spaces");

            EndOfTurnTokenIds = ReadEndOfTurnIds(files.GenerationConfigJson);

            var templateSource = config is { } c3 ? ReadChatTemplate(c3) : null;
            templateSource ??= files.ChatTemplateJinja;
            if (templateSource is not null)
            {
                try
                {
                    _chatTemplate = new ChatTemplate(templateSource, new Dictionary<string, string?>
                    {
                        ["bos_token"] = bos,
                        ["eos_token"] = eos,
                        ["unk_token"] = ConfigToken("unk_token"),
                        ["pad_token"] = ConfigToken("pad_token"),
                    });
                }
                catch (ChatTemplateException e)
                {
                    // A template beyond our Jinja subset must not stop plain prompts; chat requests get this reason.
                    _chatTemplateError = e.Message;
                }
            }
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"tokenizer.json or tokenizer_config.json is malformed: {e.Message}", e);
        }
    }

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        if (addSpecialTokens) ids.AddRange(_prefixIds);
        int at = 0;
        if (_addedTokenPattern is not null)
        {
            for (var m = _addedTokenPattern.Match(text); m.Success; m = m.NextMatch())
            {
                EncodeSegment(text.Substring(at, m.Index - at), ids);
                ids.Add(AddedTokenId(m.Value));
                at = m.Index + m.Length;
            }
        }
        EncodeSegment(at == 0 ? text : text[at..], ids);
        if (addSpecialTokens) ids.AddRange(_suffixIds);
        return ids;
    }

    private int AddedTokenId(string matched) =>
        _addedTokens.TryGetValue(matched, out var id) ? id
        : _addedTokens.TryGetValue(matched.Trim(), out id) ? id
        : _addedTokens.TryGetValue(matched.TrimStart(), out id) ? id
        : _addedTokens[matched.TrimEnd()];

    private void EncodeSegment(string segment, List<int> ids)
    {
        if (segment.Length == 0) return;
        if (_normalization is { } form) segment = Normalize(segment, form);
        if (_addPrefixSpace && segment[0] != ' ') segment = " " + segment;
        _preTokenizer.Split(segment, (offset, length) => _bpe.EncodeWord(segment.AsSpan(offset, length), ids));
    }

    /// <summary>
    /// .NET's normalizer refuses a string holding U+FFFE or U+FFFF (or a lone surrogate) with an ArgumentException, while
    /// Hugging Face's passes them through: a prompt of "\ufffe" must not be a 500. Such code points have no decomposition
    /// and compose with nothing, so normalizing the runs between them, and keeping them as they are, is what Hugging
    /// Face's normalizer gives.
    /// </summary>
    private static string Normalize(string s, NormalizationForm form)
    {
        try { return s.IsNormalized(form) ? s : s.Normalize(form); }
        catch (ArgumentException) { }
        var result = new StringBuilder(s.Length);
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            bool pair = char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]);
            int value = pair ? char.ConvertToUtf32(s[i], s[i + 1]) : s[i];
            bool refused = (!pair && char.IsSurrogate(s[i])) || (value >= 0xFDD0 && value <= 0xFDEF) || (value & 0xFFFE) == 0xFFFE;
            if (refused)
            {
                if (i > start) result.Append(s.AsSpan(start, i - start).ToString().Normalize(form));
                result.Append(s, i, pair ? 2 : 1);
                start = i + (pair ? 2 : 1);
            }
            if (pair) i++;
        }
        if (start < s.Length) result.Append(s[start..].Normalize(form));
        return result.ToString();
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (var id in ids)
            if (TokenBytes(id, skipSpecialTokens) is { } b) bytes.AddRange(b);
        var text = Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
        return _cleanUpSpaces ? SpaceCleanup.Apply(text) : text;
    }

    private Grammar.TokenVocabulary? _grammarVocabulary;

    /// <summary>Built on first use (a constrained request): about a second for 151k tokens.</summary>
    public Grammar.TokenVocabulary GrammarVocabulary =>
        LazyInitializer.EnsureInitialized(ref _grammarVocabulary, () => Grammar.TokenVocabulary.From(this));

    public IStreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = true) =>
        new StreamingDetokenizer(this, skipSpecialTokens, _cleanUpSpaces);

    /// <summary>
    /// The bytes one token contributes to decoded text, or null when it contributes none: a special token being
    /// skipped, or an id the tokenizer does not know (Hugging Face skips those too; a model's embedding table is
    /// often padded past the tokenizer's vocabulary).
    /// </summary>
    internal byte[]? TokenBytes(int id, bool skipSpecialTokens) =>
        (uint)id >= (uint)_tokenBytes.Length || (skipSpecialTokens && _isSpecial[id]) ? null : _tokenBytes[id];

    /// <summary>The id of a vocabulary or added token spelled exactly so (vocabulary spelling, e.g. "Ġthe").</summary>
    public bool TryTokenToId(string token, out int id) =>
        _addedTokens.TryGetValue(token, out id) || _vocab.TryGetValue(token, out id);

    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        ApplyChatTemplate(messages, addGenerationPrompt, null);

    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<System.Text.Json.JsonElement>? tools)
    {
        if (_chatTemplate is null)
            throw _chatTemplateError is null
                ? new ChatTemplateException("this model has no chat template (tokenizer_config.json has no chat_template); send a plain prompt instead of messages")
                : new ChatTemplateException($"this model's chat template cannot be used: {_chatTemplateError}") { IsTemplateFault = true };
        return _chatTemplate.Render(messages, addGenerationPrompt, tools);
    }

    private List<int> ReadEndOfTurnIds(string? generationConfigJson)
    {
        var ids = new List<int>();
        foreach (var name in EndOfTurnNames)
            if (_addedTokens.TryGetValue(name, out var id) && !ids.Contains(id)) ids.Add(id);
        if (EosTokenId is { } eos && !ids.Contains(eos)) ids.Add(eos);
        if (generationConfigJson is not null)
        {
            using var doc = TokenizerFiles.Parse(generationConfigJson, "generation_config.json");
            if (doc.RootElement.TryGetProperty("eos_token_id", out var e))
            {
                var list = e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().ToList() : [e];
                foreach (var x in list)
                    if (x.ValueKind == JsonValueKind.Number && x.GetInt32() is var id && (uint)id < (uint)VocabSize && !ids.Contains(id)) ids.Add(id);
            }
        }
        return ids;
    }

    private (SplitPreTokenizer PreTokenizer, bool AddPrefixSpace) ReadPreTokenizer(JsonElement root)
    {
        var stages = new List<Regex>();
        bool addPrefixSpace = false;
        void Visit(JsonElement p)
        {
            switch (p.GetProperty("type").GetString())
            {
                case "Sequence":
                    foreach (var inner in p.GetProperty("pretokenizers").EnumerateArray()) Visit(inner);
                    break;
                case "Split":
                    var behavior = p.TryGetProperty("behavior", out var bh) ? bh.GetString() : "Isolated";
                    if (behavior != "Isolated" || Bool(p, "invert"))
                        throw new NotSupportedException($"tokenizer.json: Split pre-tokenizer with behavior '{behavior}' is not supported (only Isolated)");
                    var pattern = p.GetProperty("pattern");
                    stages.Add(pattern.TryGetProperty("Regex", out var rx)
                        ? new Regex(rx.GetString()!, RegexOptions.Compiled | RegexOptions.CultureInvariant, SplitPreTokenizer.MatchTimeout)
                        : new Regex(Regex.Escape(pattern.GetProperty("String").GetString()!), RegexOptions.Compiled));
                    break;
                case "ByteLevel":
                    addPrefixSpace |= Bool(p, "add_prefix_space");
                    if (!p.TryGetProperty("use_regex", out var ur) || ur.ValueKind == JsonValueKind.True)
                        stages.Add(new Regex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.Compiled | RegexOptions.CultureInvariant));
                    break;
                case var other:
                    throw new NotSupportedException($"tokenizer.json: pre-tokenizer '{other}' is not supported (Split, ByteLevel and Sequence are)");
            }
        }
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind == JsonValueKind.Object) Visit(pre);
        return (new SplitPreTokenizer(stages), addPrefixSpace);
    }

    private static NormalizationForm? ReadNormalizer(JsonElement root) =>
        root.TryGetProperty("normalizer", out var n) && n.ValueKind == JsonValueKind.Object ? NormalizerForm(n) : null;

    private static NormalizationForm? NormalizerForm(JsonElement n)
    {
        var type = n.GetProperty("type").GetString();
        if (type == "Sequence")
        {
            var inner = n.GetProperty("normalizers").EnumerateArray().ToList();
            if (inner.Count <= 1) return inner.Count == 0 ? null : NormalizerForm(inner[0]);
        }
        return type switch
        {
            "NFC" => NormalizationForm.FormC,
            "NFD" => NormalizationForm.FormD,
            "NFKC" => NormalizationForm.FormKC,
            "NFKD" => NormalizationForm.FormKD,
            _ => throw new NotSupportedException($"tokenizer.json: normalizer '{type}' is not supported (NFC, NFD, NFKC, NFKD are)"),
        };
    }

    private (int[] Prefix, int[] Suffix) ReadPostProcessor(JsonElement root)
    {
        if (!root.TryGetProperty("post_processor", out var pp) || pp.ValueKind != JsonValueKind.Object) return ([], []);
        var processors = pp.GetProperty("type").GetString() == "Sequence" ? pp.GetProperty("processors").EnumerateArray().ToList() : [pp];
        foreach (var p in processors)
        {
            if (p.GetProperty("type").GetString() != "TemplateProcessing") continue;
            var prefix = new List<int>();
            var suffix = new List<int>();
            bool seenSequence = false;
            foreach (var piece in p.GetProperty("single").EnumerateArray())
            {
                if (piece.TryGetProperty("Sequence", out _)) { seenSequence = true; continue; }
                var name = piece.GetProperty("SpecialToken").GetProperty("id").GetString()!;
                var ids = p.GetProperty("special_tokens").GetProperty(name).GetProperty("ids").EnumerateArray().Select(x => x.GetInt32());
                (seenSequence ? suffix : prefix).AddRange(ids);
            }
            return (prefix.ToArray(), suffix.ToArray());
        }
        return ([], []);
    }

    private static string? ReadChatTemplate(JsonElement config)
    {
        if (!config.TryGetProperty("chat_template", out var ct)) return null;
        if (ct.ValueKind == JsonValueKind.String) return ct.GetString();
        if (ct.ValueKind != JsonValueKind.Array) return null;
        // The older list form: [{name, template}], of which "default" is the chat template.
        var named = ct.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.Object).ToList();
        var chosen = named.FirstOrDefault(x => x.TryGetProperty("name", out var n) && n.GetString() == "default");
        if (chosen.ValueKind != JsonValueKind.Object && named.Count > 0) chosen = named[0];
        return chosen.ValueKind == JsonValueKind.Object && chosen.TryGetProperty("template", out var tpl) ? tpl.GetString() : null;
    }

    /// <summary>A special-token entry of tokenizer_config.json: a string, or an AddedToken object with "content".</summary>
    private static string? TokenName(JsonElement config, string name) =>
        !config.TryGetProperty(name, out var v) ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) ? c.GetString()
        : null;

    private static bool IsByteLevel(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var d) || d.ValueKind != JsonValueKind.Object) return false;
        var type = d.GetProperty("type").GetString();
        return type == "ByteLevel"
            || (type == "Sequence" && d.GetProperty("decoders").EnumerateArray().Any(x => x.GetProperty("type").GetString() == "ByteLevel"));
    }

    private static bool Bool(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;

    private static JsonElement Required(JsonElement e, string name, string where) =>
        e.TryGetProperty(name, out var v) ? v : throw new InvalidDataException($"{where} has no '{name}'");
}
