using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ActorQuery.Api.Dtos;

namespace ActorQuery.Api.Generation;

/// <summary>
/// Reads tool calls in the form Llama 3.1+ templates teach: the output is <c>{"name": ..., "parameters": {...}}</c>,
/// optionally after <c>&lt;|python_tag|&gt;</c>, and several calls are separated by <c>;</c> (<c>"arguments"</c> is
/// read in place of <c>"parameters"</c> too). An output is calls only when its first non-blank text opens one; then
/// there is no content, and text after the last call is dropped. An output that begins otherwise is content.
/// </summary>
internal static partial class LlamaToolCallParser
{
    public const string PythonTag = "<|python_tag|>";

    public static (string? Content, List<ToolCallOut> Calls) Parse(string text)
    {
        var calls = new List<ToolCallOut>();
        int at = CallsStart(text);
        while (at >= 0)
        {
            int end = ObjectEnd(text, at);
            if (end < 0 || TryCall(text.AsSpan(at, end - at)) is not { } call) break;
            calls.Add(call);
            at = NextCall(text, end);
        }
        return calls.Count == 0 ? (text, calls) : (null, calls);
    }

    /// <summary>Where the first call's <c>{</c> is (after blanks and an optional python tag), or -1 when the text
    /// begins with anything else.</summary>
    public static int CallsStart(string text)
    {
        int i = SkipBlanks(text, 0);
        if (text.AsSpan(i).StartsWith(PythonTag, StringComparison.Ordinal)) i = SkipBlanks(text, i + PythonTag.Length);
        return i < text.Length && text[i] == '{' ? i : -1;
    }

    /// <summary>Where the next call's <c>{</c> is after a call that ended at <paramref name="end"/>: past blanks, an
    /// optional <c>;</c> and blanks; -1 when none follows.</summary>
    public static int NextCall(string text, int end)
    {
        int i = SkipBlanks(text, end);
        if (i < text.Length && text[i] == ';') i = SkipBlanks(text, i + 1);
        return i < text.Length && text[i] == '{' ? i : -1;
    }

    /// <summary>The index just past the JSON object that opens at <paramref name="start"/>, or -1 while it is unfinished.</summary>
    public static int ObjectEnd(string text, int start)
    {
        int depth = 0;
        bool inString = false, escaped = false;
        for (int i = start; i < text.Length; i++)
        {
            char c = text[i];
            if (inString)
            {
                if (escaped) escaped = false;
                else if (c == '\\') escaped = true;
                else if (c == '"') inString = false;
            }
            else if (c == '"') inString = true;
            else if (c is '{' or '[') depth++;
            else if (c is '}' or ']' && --depth == 0) return i + 1;
        }
        return -1;
    }

    /// <summary>The call in one object's text, or null when it is not <c>{"name": string, "parameters": object}</c>.</summary>
    public static ToolCallOut? TryCall(ReadOnlySpan<char> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToString());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
                || !(root.TryGetProperty("parameters", out var args) || root.TryGetProperty("arguments", out args))
                || args.ValueKind != JsonValueKind.Object)
                return null;
            return new ToolCallOut(ToolCallParser.NewCallId(), "function", new FunctionCallOut(name.GetString()!, args.GetRawText()));
        }
        catch (JsonException) { return null; }
    }

    /// <summary>Where a call's JSON has written its name and reached the first character of its parameters.</summary>
    [GeneratedRegex("""^\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"(?:parameters|arguments)"\s*:\s*(?=\{)""")]
    public static partial Regex CallHead();

    private static int SkipBlanks(string text, int i)
    {
        while (i < text.Length && char.IsWhiteSpace(text[i])) i++;
        return i;
    }
}

/// <summary>
/// The streamed form of <see cref="LlamaToolCallParser"/>. Until the first non-blank text shows whether the output is
/// calls, nothing goes out; then either all of it is content, or each call goes out as OpenAI's deltas: index, id,
/// type, name and empty arguments as soon as the name is written, then the parameters as the model writes them, so that
/// the pieces join to the non-streamed answer's arguments. A call written in another order goes out whole when its
/// object closes; an object that is no call goes out as content when it is the first, and ends the calls otherwise.
/// </summary>
internal sealed class LlamaToolCallStreamer : IToolCallStreamer
{
    private enum State { Undecided, Content, InCall, BetweenCalls, Done }

    private readonly StringBuilder _pending = new();
    private State _state = State.Undecided;
    private int _calls;
    // Within a call (the pending text starts at its '{'): whether its first delta went out, where its parameters
    // begin, and how much of them went out.
    private bool _headSent;
    private int _argsStart, _argsSent;
    // What was read before the first call's '{' (blanks, the python tag), for content if it turns out to be none.
    private string _lead = "";

    public bool MadeCalls => _calls > 0;

    public List<ChatDelta> Push(string text)
    {
        _pending.Append(text);
        var deltas = new List<ChatDelta>();
        while (Step(deltas)) { }
        return deltas;
    }

    public List<ChatDelta> Finish()
    {
        var deltas = new List<ChatDelta>();
        string rest = _pending.ToString();
        _pending.Clear();
        if (_state == State.Undecided && rest.Length > 0) deltas.Add(new ChatDelta(null, rest));
        else if (_state == State.InCall && !_headSent && _calls == 0) deltas.Add(new ChatDelta(null, _lead + rest));
        return deltas;
    }

    private bool Step(List<ChatDelta> deltas)
    {
        string s = _pending.ToString();
        switch (_state)
        {
            case State.Undecided:
            {
                int start = LlamaToolCallParser.CallsStart(s);
                if (start >= 0)
                {
                    _lead = s[..start];
                    BeginCall(start);
                    return true;
                }
                string trimmed = s.TrimStart();
                bool mayOpen = trimmed.Length == 0
                               || LlamaToolCallParser.PythonTag.StartsWith(trimmed, StringComparison.Ordinal)
                               || (trimmed.StartsWith(LlamaToolCallParser.PythonTag, StringComparison.Ordinal)
                                   && trimmed[LlamaToolCallParser.PythonTag.Length..].Trim().Length == 0);
                if (mayOpen) return false;
                _state = State.Content;
                return true;
            }
            case State.Content:
                if (s.Length > 0) deltas.Add(new ChatDelta(null, s));
                _pending.Clear();
                return false;
            case State.InCall:
                return StepCall(s, deltas);
            case State.BetweenCalls:
            {
                int next = LlamaToolCallParser.NextCall(s, 0);
                if (next >= 0) { BeginCall(next); return true; }
                // Wait while only blanks and at most one ';' have come; anything else ends the calls.
                string t = s.Trim();
                if (t.Length == 0 || t == ";") return false;
                _state = State.Done;
                return true;
            }
            default:
                _pending.Clear();
                return false;
        }
    }

    private void BeginCall(int at)
    {
        _pending.Remove(0, at);
        _state = State.InCall;
        _headSent = false;
        _argsStart = _argsSent = 0;
    }

    private bool StepCall(string s, List<ChatDelta> deltas)
    {
        if (!_headSent && LlamaToolCallParser.CallHead().Match(s) is { Success: true } head)
        {
            string name;
            try { name = JsonSerializer.Deserialize<string>(head.Groups[1].Value)!; }
            catch (JsonException) { name = ""; }
            if (name.Length > 0)
            {
                deltas.Add(Delta(new ToolCallDeltaOut(_calls, ToolCallParser.NewCallId(), "function", new FunctionDeltaOut(name, ""))));
                _headSent = true;
                _argsStart = _argsSent = head.Length;
            }
        }
        if (_headSent)
        {
            int argsEnd = LlamaToolCallParser.ObjectEnd(s, _argsStart);
            int upTo = argsEnd < 0 ? s.Length : argsEnd;
            if (upTo > _argsSent)
            {
                deltas.Add(Delta(new ToolCallDeltaOut(_calls, null, null, new FunctionDeltaOut(null, s[_argsSent..upTo]))));
                _argsSent = upTo;
            }
        }

        int end = LlamaToolCallParser.ObjectEnd(s, 0);
        if (end < 0) return false;
        _pending.Remove(0, end);
        if (_headSent)
        {
            _calls++;
            _state = State.BetweenCalls;
            return true;
        }
        if (LlamaToolCallParser.TryCall(s.AsSpan(0, end)) is { } call)
        {
            deltas.Add(Delta(new ToolCallDeltaOut(_calls, call.Id, call.Type, new FunctionDeltaOut(call.Function.Name, ""))));
            deltas.Add(Delta(new ToolCallDeltaOut(_calls, null, null, new FunctionDeltaOut(null, call.Function.Arguments))));
            _calls++;
            _state = State.BetweenCalls;
            return true;
        }
        if (_calls == 0)
        {
            // The first object is no call: the whole output is content.
            deltas.Add(new ChatDelta(null, _lead + s[..end]));
            _state = State.Content;
            return true;
        }
        _state = State.Done;
        return true;
    }

    private static ChatDelta Delta(ToolCallDeltaOut call) => new(null, null, [call]);
}
