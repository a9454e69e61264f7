using System.Text.Json;

namespace ActorQuery.Tokenization;

/// <summary>One chat message; roles are "system", "user", "assistant" and "tool".</summary>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>The calls an assistant turn made (role "assistant").</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }

    /// <summary>The call a tool result answers (role "tool").</summary>
    public string? ToolCallId { get; init; }

    /// <summary>The optional name of the participant or tool.</summary>
    public string? Name { get; init; }
}

/// <summary>One function call of an assistant turn; <paramref name="Arguments"/> is the arguments object.</summary>
public sealed record ChatToolCall(string Id, string Name, JsonElement Arguments);

/// <summary>
/// Text ↔ token ids for one model, as Hugging Face's tokenizer.json + tokenizer_config.json define them.
/// Thread-safe for encode/decode; a streaming detokenizer belongs to one sequence.
/// </summary>
public interface ITokenizer
{
    int VocabSize { get; }

    /// <summary>Encodes text; special tokens written in it (<c>&lt;|im_start|&gt;</c>) become single ids. Adds BOS only when
    /// <paramref name="addSpecialTokens"/> and the model's config asks for it.</summary>
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false);

    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false);

    /// <summary>A decoder for one sequence's token stream that never splits a UTF-8 character.</summary>
    IStreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = true);

    /// <summary>True when tokenizer_config.json carries a chat template this tokenizer can render.</summary>
    bool HasChatTemplate { get; }

    /// <summary>Renders messages as the model was trained on (apply_chat_template). Throws
    /// <see cref="ChatTemplateException"/> when the model has no usable template or a message is invalid.</summary>
    string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true);

    /// <summary>True when the chat template reads <c>tools</c>, so that tool definitions reach the model.</summary>
    bool ChatTemplateSupportsTools => false;

    /// <summary>How the model writes tool calls, as its chat template shows (<see cref="ChatTemplate.ToolCallFormat"/>).</summary>
    ToolCallFormat ChatTemplateToolCallFormat => ToolCallFormat.Tagged;

    /// <summary>Renders messages with tool definitions (each a <c>{"type": "function", "function": {...}}</c> object);
    /// throws <see cref="ChatTemplateException"/> when the template does not support tools.</summary>
    string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<JsonElement>? tools) =>
        tools is { Count: > 0 }
            ? throw new ChatTemplateException("this model's chat template does not support tools")
            : ApplyChatTemplate(messages, addGenerationPrompt);

    /// <summary>Tokens that end a turn or the text (<c>&lt;|im_end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>, <c>&lt;|endoftext|&gt;</c>), as far as the tokenizer knows them.</summary>
    IReadOnlyList<int> EndOfTurnTokenIds { get; }

    /// <summary>The vocabulary's byte strings as the trie that constrained decoding walks (built once, on first use);
    /// null when this tokenizer cannot spell its tokens as bytes.</summary>
    Grammar.TokenVocabulary? GrammarVocabulary => null;
}

/// <summary>Turns one sequence's tokens into text chunks as they arrive.</summary>
public interface IStreamingDetokenizer
{
    /// <summary>Adds a token; returns the text that is now complete (possibly empty while a character is partial).</summary>
    string Push(int tokenId);

    /// <summary>Whatever text is still held back at the end of the sequence.</summary>
    string Flush();
}

/// <summary>A chat request the template cannot render: an invalid message, the template's own rejection of the
/// messages, or (<see cref="IsTemplateFault"/>) a template that broke one of its limits while rendering.</summary>
public sealed class ChatTemplateException(string message) : Exception(message)
{
    /// <summary>True when the template itself is at fault (it recursed, looped or grew past a limit), so the
    /// server's model configuration needs fixing, not the request.</summary>
    public bool IsTemplateFault { get; init; }
}
