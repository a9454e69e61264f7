using System.Text.Json;

namespace ActorQuery.Tokenization;

/// <summary>The text of the files a Hugging Face model folder carries for its tokenizer.</summary>
/// <param name="TokenizerJson">tokenizer.json (required).</param>
/// <param name="TokenizerConfigJson">tokenizer_config.json, or null: no chat template, no special-token names.</param>
/// <param name="GenerationConfigJson">generation_config.json, or null; its eos_token_id joins the end-of-turn ids.</param>
/// <param name="ChatTemplateJinja">chat_template.jinja, or null; used when tokenizer_config.json has no chat_template.</param>
public sealed record TokenizerFiles(
    string TokenizerJson,
    string? TokenizerConfigJson = null,
    string? GenerationConfigJson = null,
    string? ChatTemplateJinja = null)
{
    /// <summary>Reads the files from a model folder or from the path of a tokenizer.json (its siblings are read too).</summary>
    public static TokenizerFiles Read(string modelFolderOrTokenizerJson)
    {
        string folder, tokenizerJson;
        if (Directory.Exists(modelFolderOrTokenizerJson))
        {
            folder = modelFolderOrTokenizerJson;
            tokenizerJson = Path.Combine(folder, "tokenizer.json");
            if (!File.Exists(tokenizerJson))
                throw new FileNotFoundException($"model folder '{folder}' has no tokenizer.json", tokenizerJson);
        }
        else if (File.Exists(modelFolderOrTokenizerJson))
        {
            tokenizerJson = modelFolderOrTokenizerJson;
            folder = Path.GetDirectoryName(Path.GetFullPath(tokenizerJson))!;
        }
        else
        {
            throw new FileNotFoundException(
                $"tokenizer path '{modelFolderOrTokenizerJson}' is neither a model folder nor a tokenizer.json file",
                modelFolderOrTokenizerJson);
        }

        static string? Optional(string path) => File.Exists(path) ? File.ReadAllText(path) : null;
        return new TokenizerFiles(
            File.ReadAllText(tokenizerJson),
            Optional(Path.Combine(folder, "tokenizer_config.json")),
            Optional(Path.Combine(folder, "generation_config.json")),
            Optional(Path.Combine(folder, "chat_template.jinja")));
    }

    internal static JsonDocument Parse(string json, string fileName)
    {
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{fileName} is not valid JSON: {e.Message}", e);
        }
    }
}
