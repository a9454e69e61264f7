using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using ActorQuery.Api.Dtos;

namespace ActorQuery.Api.Generation;

/// <summary>
/// Reads tool calls out of a model's text in the form Qwen2.5 and Hermes-style templates teach:
/// <c>&lt;tool_call&gt;\n{"name": ..., "arguments": {...}}\n&lt;/tool_call&gt;</c>, one or several. The content is
/// the text before the first call (a block before it that is no call stays in it as written); text after the first
/// call is not content.
/// </summary>
internal static partial class ToolCallParser
{
    public const string Open = "<tool_call>", Close = "</tool_call>";

    public static string NewCallId() => "call_" + RandomNumberGenerator.GetHexString(24, lowercase: true);

    /// <summary>The whole output: its content (null when there is none) and its calls (empty when the model
    /// answered in text).</summary>
    public static (string? Content, List<ToolCallOut> Calls) Parse(string text)
    {
        var calls = new List<ToolCallOut>();
        int at = 0, first = -1;
        while (true)
        {
            int open = text.IndexOf(Open, at, StringComparison.Ordinal);
            int close = open < 0 ? -1 : text.IndexOf(Close, open + Open.Length, StringComparison.Ordinal);
            if (close < 0) break;
            if (TryCall(text.AsSpan(open + Open.Length, close - open - Open.Length)) is { } call)
            {
                if (calls.Count == 0) first = open;
                calls.Add(call);
            }
            at = close + Close.Length;
        }
        if (calls.Count == 0) return (text, calls);
        string before = text[..first].TrimEnd();
        return (before.Length == 0 ? null : before, calls);
    }

    /// <summary>The call in one block's text, or null when it is not <c>{"name": string, "arguments": object}</c>.</summary>
    public static ToolCallOut? TryCall(ReadOnlySpan<char> block)
    {
        try
        {
            using var doc = JsonDocument.Parse(block.ToString().Trim());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("arguments", out var args) || args.ValueKind != JsonValueKind.Object)
                return null;
            return new ToolCallOut(NewCallId(), "function", new FunctionCallOut(name.GetString()!, args.GetRawText()));
        }
        catch (JsonException) { return null; }
    }

    /// <summary>Where a call's JSON has written its name and reached the first character of its arguments.</summary>
    [GeneratedRegex("""^\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*(?=\{)""")]
    public static partial Regex CallHead();
}
