using ActorQuery.Inference.Engine;

namespace ActorQuery.Host.Cli;

/// <summary>Options shared by the verbs that load a model directly (generate, bench).</summary>
internal static class EngineCli
{
    public static readonly string[] Flags = ["dummy-weights", "json", "ignore-eos"];

    public static EngineOptions Options(CliArgs a, string? model = null) => new()
    {
        ModelPath = model ?? a.RequiredString("model"),
        Dtype = a.String("dtype") ?? "auto",
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
}
