using System.Text.Encodings.Web;
using System.Text.Json;
using ActorQuery.Tokenization;

namespace ActorQuery.Host.Cli;

/// <summary>
/// <c>tokenize --tokenizer PATH (--text TEXT | --messages-file FILE) [--add-special-tokens] [--json]</c>: the ids a
/// model sees for a text, or for chat messages rendered with the model's chat template (generation prompt appended).
/// </summary>
public static class TokenizeCommand
{
    /// <summary>Compact JSON that keeps "&lt;|im_start|&gt;" and Chinese readable.</summary>

    public static int Run(string[] args) => Run(args, Console.Out);

    public static int Run(string[] args, TextWriter output)
    {
        var cli = new CliArgs(args, new HashSet<string> { "json", "add-special-tokens" });
        var path = cli.RequiredString("tokenizer");
        var text = cli.String("text");
        var messagesFile = cli.String("messages-file");
        bool json = cli.Flag("json");
        bool addSpecial = cli.Flag("add-special-tokens");
        cli.EnsureAllUsed();
        if ((text is null) == (messagesFile is null))
            throw new CliException("give exactly one of --text TEXT or --messages-file FILE");

        var messages = messagesFile is null ? null : ReadMessages(messagesFile);
        var tokenizer = EngineCli.LoadTokenizer(path);
        string prompt;
        try
        {
            prompt = messages is null ? text! : tokenizer.ApplyChatTemplate(messages, addGenerationPrompt: true);
        }
        catch (ChatTemplateException e)
        {
            throw new CliException($"--messages-file: {e.Message}");
        }
        var ids = tokenizer.Encode(prompt, addSpecial);

        if (json) output.WriteLine(JsonSerializer.Serialize(new { ids, text = prompt }, EngineCli.Json));
        else
        {
            output.WriteLine($"{ids.Count} tokens: {string.Join(' ', ids)}");
            output.WriteLine(prompt);
        }
        return 0;
    }

    /// <summary>A JSON array of {"role": ..., "content": ...}; errors name the message and the field.</summary>
    internal static IReadOnlyList<ChatMessage> ReadMessages(string file)
    {
        if (!File.Exists(file)) throw new CliException($"--messages-file: file '{file}' not found");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(file));
        }
        catch (JsonException e)
        {
            throw new CliException($"--messages-file: '{file}' is not valid JSON: {e.Message}");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new CliException("--messages-file: expected a JSON array of {\"role\", \"content\"} objects");
            var messages = new List<ChatMessage>();
            int i = 0;
            foreach (var m in doc.RootElement.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object) throw new CliException($"--messages-file: messages[{i}] is not an object");
                string Field(string name) =>
                    m.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
                        ? v.GetString()!
                        : throw new CliException($"--messages-file: messages[{i}].{name} is missing or not a string");
                messages.Add(new ChatMessage(Field("role"), Field("content")));
                i++;
            }
            if (messages.Count == 0) throw new CliException("--messages-file: the array has no messages");
            return messages;
        }
    }
}
