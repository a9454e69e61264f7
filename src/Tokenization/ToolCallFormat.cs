namespace ActorQuery.Tokenization;

/// <summary>How a model writes a tool call, as its chat template teaches it (see <see cref="ChatTemplate.ToolCallFormat"/>).</summary>
public enum ToolCallFormat
{
    /// <summary>Qwen2.5 and Hermes-style: <c>&lt;tool_call&gt;\n{"name": ..., "arguments": {...}}\n&lt;/tool_call&gt;</c>,
    /// one block per call.</summary>
    Tagged,

    /// <summary>Llama 3.1+: the bare JSON <c>{"name": ..., "parameters": {...}}</c>, optionally after
    /// <c>&lt;|python_tag|&gt;</c>, several calls separated by <c>;</c>.</summary>
    LlamaJson,
}
