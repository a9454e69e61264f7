using System.Text;
using System.Text.Json;
using ActorQuery.Api.Dtos;

namespace ActorQuery.Api.Generation;

/// <summary>
/// The streamed form of <see cref="ToolCallParser"/>: turns one sequence's text chunks into OpenAI deltas. Content
/// passes through except what may be the start of <c>&lt;tool_call&gt;</c> (and trailing whitespace, which the
/// non-streamed answer trims before a call). Inside a call, the first delta carries index, id, type, the name and
/// empty arguments as soon as the name is written; later deltas carry the arguments as the model writes them, so that
/// the pieces join to the same arguments text as the non-streamed answer. A call written in another shape (arguments
/// before name) goes out whole when its closing tag arrives; a block that is no call goes out as content.
/// </summary>
internal sealed class ToolCallStreamer : IToolCallStreamer
{
    private readonly StringBuilder _pending = new();
    private bool _inCall;
    private int _calls;
    // Within a call: whether its first delta went out, how much of the block's arguments went out, and the
    // arguments' JSON nesting as read so far.
    private bool _headSent;
    private int _argsSent;
    private int _depth;
    private bool _inString, _escaped, _argsDone;

    /// <summary>True once a call went out: the finish reason is then tool_calls.</summary>
    public bool MadeCalls => _calls > 0;

    public List<ChatDelta> Push(string text)
    {
        _pending.Append(text);
        var deltas = new List<ChatDelta>();
        while (Step(deltas)) { }
        return deltas;
    }

    /// <summary>The end of the output: whatever was held back goes out as content unless it is an unfinished call
    /// whose name already went out (the arguments sent so far stand).</summary>
    public List<ChatDelta> Finish()
    {
        var deltas = new List<ChatDelta>();
        if (_inCall && _headSent) { _pending.Clear(); return deltas; }
        string rest = (_inCall ? ToolCallParser.Open : "") + _pending;
        _pending.Clear();
        if (_calls == 0 && rest.Length > 0) deltas.Add(new ChatDelta(null, rest));
        return deltas;
    }

    private bool Step(List<ChatDelta> deltas)
    {
        string s = _pending.ToString();
        if (!_inCall)
        {
            int open = s.IndexOf(ToolCallParser.Open, StringComparison.Ordinal);
            if (open >= 0)
            {
                // Content before the first call, trimmed as the non-streamed answer trims it; between calls only whitespace.
                string before = s[..open];
                if (_calls == 0 && before.TrimEnd().Length > 0) deltas.Add(new ChatDelta(null, before.TrimEnd()));
                _pending.Remove(0, open + ToolCallParser.Open.Length);
                _inCall = true;
                _headSent = false;
                _argsSent = _depth = 0;
                _inString = _escaped = _argsDone = false;
                return true;
            }
            // After a call, text is dropped (as the non-streamed answer drops it) but a possible next tag is kept.
            int keep = HeldBack(s);
            if (keep < s.Length)
            {
                if (_calls == 0) deltas.Add(new ChatDelta(null, s[..^keep]));
                _pending.Remove(0, s.Length - keep);
            }
            return false;
        }

        int close = s.IndexOf(ToolCallParser.Close, StringComparison.Ordinal);
        if (!_headSent && ToolCallParser.CallHead().Match(s) is { Success: true } head)
        {
            string name;
            try { name = JsonSerializer.Deserialize<string>(head.Groups[1].Value)!; }
            catch (JsonException) { name = ""; }
            if (name.Length > 0)
            {
                deltas.Add(Delta(new ToolCallDeltaOut(_calls, ToolCallParser.NewCallId(), "function", new FunctionDeltaOut(name, ""))));
                _headSent = true;
                _argsSent = head.Length;
            }
        }
        if (_headSent) SendArguments(s, close < 0 ? s.Length : close, deltas);
        if (close < 0) return false;

        string block = s[..close];
        _pending.Remove(0, close + ToolCallParser.Close.Length);
        _inCall = false;
        if (_headSent) { _calls++; return true; }
        if (ToolCallParser.TryCall(block) is { } call)
        {
            deltas.Add(Delta(new ToolCallDeltaOut(_calls, call.Id, call.Type, new FunctionDeltaOut(call.Function.Name, ""))));
            deltas.Add(Delta(new ToolCallDeltaOut(_calls, null, null, new FunctionDeltaOut(null, call.Function.Arguments))));
            _calls++;
        }
        else if (_calls == 0) deltas.Add(new ChatDelta(null, ToolCallParser.Open + block + ToolCallParser.Close));
        return true;
    }

    /// <summary>Sends the arguments read since the last delta, up to the end of the arguments object.</summary>
    private void SendArguments(string s, int end, List<ChatDelta> deltas)
    {
        int from = _argsSent, i = from;
        for (; i < end && !_argsDone; i++)
        {
            char c = s[i];
            if (_inString)
            {
                if (_escaped) _escaped = false;
                else if (c == '\\') _escaped = true;
                else if (c == '"') _inString = false;
            }
            else if (c == '"') _inString = true;
            else if (c is '{' or '[') _depth++;
            else if (c is '}' or ']' && --_depth == 0) _argsDone = true;
        }
        _argsSent = i;
        if (i > from) deltas.Add(Delta(new ToolCallDeltaOut(_calls, null, null, new FunctionDeltaOut(null, s[from..i]))));
    }

    private static ChatDelta Delta(ToolCallDeltaOut call) => new(null, null, [call]);

    /// <summary>How many trailing characters to hold: a suffix that may begin the open tag, and whitespace.</summary>
    private static int HeldBack(string s)
    {
        int keep = 0;
        for (int n = Math.Min(ToolCallParser.Open.Length - 1, s.Length); n > 0; n--)
            if (ToolCallParser.Open.StartsWith(s[^n..], StringComparison.Ordinal)) { keep = n; break; }
        int end = s.Length - keep;
        while (end > 0 && char.IsWhiteSpace(s[end - 1])) end--;
        return s.Length - end;
    }
}

/// <summary>Turns one sequence's text chunks into OpenAI chat deltas: content, and tool calls in the model's format.</summary>
internal interface IToolCallStreamer
{
    /// <summary>True once a call went out: the finish reason is then tool_calls.</summary>
    bool MadeCalls { get; }

    /// <summary>The deltas that this chunk completes (text that may still open a call is held back).</summary>
    List<ChatDelta> Push(string text);

    /// <summary>The end of the output: what was held back and is no call goes out as content.</summary>
    List<ChatDelta> Finish();
}

/// <summary>For <c>parallel_tool_calls: false</c>: only the first call's deltas go out, as only the first call is in
/// the non-streamed answer.</summary>
internal sealed class FirstCallOnly(IToolCallStreamer inner) : IToolCallStreamer
{
    public bool MadeCalls => inner.MadeCalls;

    public List<ChatDelta> Push(string text) => Keep(inner.Push(text));

    public List<ChatDelta> Finish() => Keep(inner.Finish());

    private static List<ChatDelta> Keep(List<ChatDelta> deltas) =>
        deltas.Where(d => d.ToolCalls is null || d.ToolCalls.All(c => c.Index == 0)).ToList();
}
