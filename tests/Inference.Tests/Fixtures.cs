using System.Text.Json;
using ActorQuery.Inference.Checkpoint;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Tests;

/// <summary>The reference fixtures (Hugging Face transformers outputs) copied next to the test assembly.</summary>
public static class Fixtures
{
    public static readonly string[] Models = ["qwen2-tiny-f32", "qwen2-tiny-bf16", "llama3-tiny-f32"];

    public static string Dir(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", name);

    public sealed record Case(int Index, int[] InputIds, int[] GreedyIds);

    public static IReadOnlyList<Case> Cases(string model)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir(model), "reference.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select((c, i) => new Case(i,
            c.GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            c.GetProperty("greedy_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray())).ToList();
    }

    /// <summary>Reference logits of case i: [T, vocab].</summary>
    public static float[] Logits(string model, int index, out long[] shape)
    {
        using var f = new SafetensorsFile(Path.Combine(Dir(model), "reference.safetensors"));
        var e = f.Entries[$"logits_{index}"];
        shape = e.Shape;
        using var t = f.Read(e);
        return t.data<float>().ToArray();
    }

    public static IEnumerable<object[]> AllCases() =>
        Models.SelectMany(m => Cases(m).Select(c => new object[] { m, c.Index }));
}
