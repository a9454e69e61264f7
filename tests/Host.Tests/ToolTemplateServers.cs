using System.Text.Json.Nodes;

namespace ActorQuery.Host.Tests;

/// <summary>
/// The default model on loopback with a tools-aware chat template swapped in, one server per test class: the shipped
/// ChatML template ignores tools, and the model never learnt to call them, so only <c>tool_choice: "required"</c> (the
/// grammar) makes its output a call. The templates are short (the model's context is 512 tokens) but write calls in the
/// two forms the server reads, so the server detects the format from them as it would for Qwen2.5 or Llama 3.1.
/// </summary>
public abstract class ToolTemplateServer(string template) : IAsyncLifetime
{
    private string _folder = null!;
    internal DefaultModelServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _folder = Directory.CreateTempSubdirectory("aq-tools-model-").FullName;
        foreach (var file in Directory.GetFiles(DefaultModelServer.ModelFolder))
            File.Copy(file, Path.Combine(_folder, Path.GetFileName(file)));
        string configPath = Path.Combine(_folder, "tokenizer_config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!;
        config["chat_template"] = template;
        File.WriteAllText(configPath, config.ToJsonString());
        Server = await DefaultModelServer.StartAsync([], modelFolder: _folder);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Directory.Delete(_folder, recursive: true);
    }
}

/// <summary>Calls as Qwen2.5 and Hermes write them: <c>&lt;tool_call&gt;\n{"name", "arguments"}\n&lt;/tool_call&gt;</c>.</summary>
public sealed class TaggedToolsServer() : ToolTemplateServer(
    "{%- if tools %}<|im_start|>system\nTools:\n{% for tool in tools %}{{ tool.function | tojson }}\n{% endfor %}<|im_end|>\n{% endif %}" +
    "{%- for message in messages %}<|im_start|>{{ message.role }}\n{% if message.tool_calls %}{% for call in message.tool_calls %}" +
    "<tool_call>\n{\"name\": \"{{ call.function.name }}\", \"arguments\": {{ call.function.arguments | tojson }}}\n</tool_call>" +
    "{% endfor %}{% else %}{{ message.content }}{% endif %}<|im_end|>\n{% endfor %}" +
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");

/// <summary>Calls as Llama 3.1+ write them: <c>{"name", "parameters"}</c>, results under the ipython role (ChatML's
/// markers stand in for Llama's headers, which this model's vocabulary would spell out at great length).</summary>
public sealed class LlamaToolsServer() : ToolTemplateServer(
    "{%- if tools %}<|im_start|>system\nTools:\n{% for tool in tools %}{{ tool.function | tojson }}\n{% endfor %}<|im_end|>\n{% endif %}" +
    "{%- for message in messages %}{% if message.tool_calls %}<|im_start|>assistant\n" +
    "{{ '{\"name\": \"' + message.tool_calls[0].function.name + '\", \"parameters\": ' + message.tool_calls[0].function.arguments | tojson + '}' }}" +
    "{% elif message.role == 'tool' %}<|im_start|>ipython\n{{ message.content }}" +
    "{% else %}<|im_start|>{{ message.role }}\n{{ message.content }}{% endif %}<|im_end|>\n{% endfor %}" +
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
