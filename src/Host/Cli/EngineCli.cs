using System.Text.Encodings.Web;
using System.Text.Json;
using ActorQuery.Tokenization;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;

namespace ActorQuery.Host.Cli;

/// <summary>Options shared by the verbs that load a model or a tokenizer directly (generate, tokenize and the bench tool).</summary>
internal static class EngineCli
{
    /// <summary>JSON output of the CLI verbs: non-ASCII text stays readable.</summary>
    public static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static readonly string[] Flags = ["dummy-weights", "json", "ignore-eos"];

    public static EngineOptions Options(CliArgs a, string? model = null) => new()
    {
        ModelPath = model ?? a.RequiredString("model"),
        Dtype = a.String("quantize") switch
        {
            null or "none" => a.String("dtype") ?? "auto",
            "int8" => a.String("dtype") is null or "auto" or "int8" ? "int8" : throw new CliException("options --quantize int8 and --dtype ask for different weights: give one of them"),
            var q => throw new CliException($"option --quantize: '{q}' is not one of none, int8"),
        },
        Device = a.String("device") ?? "auto",
        DummyWeights = a.Flag("dummy-weights"),
        Threads = a.Int("threads", 0, 1024) ?? 0,
    };

    /// <summary>Loads an engine; a model that cannot load is a bad argument (one line, exit 2).</summary>
    public static InferenceEngine Load(EngineOptions o)
    {
        try { return InferenceEngine.Load(o); }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or ArgumentException or UnauthorizedAccessException)
        {
            throw new CliException(e.Message);
        }
    }

    /// <summary>Loads a tokenizer, turning every way a path can be wrong into a one-line CLI error.</summary>
    public static HfTokenizer LoadTokenizer(string path)
    {
        try
        {
            return HfTokenizer.FromPath(path);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException
                                   or JsonException or KeyNotFoundException or InvalidOperationException or ChatTemplateException)
        {
            throw new CliException($"--tokenizer: {e.Message}");
        }
    }
}
