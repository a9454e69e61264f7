using System.Text.Json;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Checkpoint;

/// <summary>
/// A Hugging Face checkpoint's tensors: <c>model.safetensors</c>, or the shards that
/// <c>model.safetensors.index.json</c> names. Tensors are read one at a time, by name.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private readonly List<SafetensorsFile> _files = new();
    private readonly Dictionary<string, (SafetensorsFile File, SafetensorsEntry Entry)> _byName = new(StringComparer.Ordinal);

    public string Folder { get; }
    public IReadOnlyCollection<string> TensorNames => _byName.Keys;

    public Checkpoint(string folder)
    {
        Folder = folder;
        var single = Path.Combine(folder, "model.safetensors");
        var index = Path.Combine(folder, "model.safetensors.index.json");
        try
        {
            if (File.Exists(single)) Add(single);
            else if (File.Exists(index))
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(index));
                var shards = doc.RootElement.GetProperty("weight_map").EnumerateObject()
                    .Select(p => p.Value.GetString()!).Distinct().OrderBy(s => s, StringComparer.Ordinal);
                foreach (var shard in shards)
                {
                    var path = Path.Combine(folder, shard);
                    if (!File.Exists(path)) throw new FileNotFoundException($"{index}: shard '{shard}' not found", path);
                    Add(path);
                }
            }
            else throw new FileNotFoundException($"{folder}: neither model.safetensors nor model.safetensors.index.json found");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Add(string path)
    {
        var f = new SafetensorsFile(path);
        _files.Add(f);
        foreach (var e in f.Entries.Values)
            if (!_byName.TryAdd(e.Name, (f, e)))
                throw new InvalidDataException($"{path}: tensor '{e.Name}' also appears in {_byName[e.Name].File.Path}");
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Reads a tensor and checks its shape; errors name the file and the tensor.</summary>
    public Tensor Read(string name, long[] expectedShape)
    {
        if (!_byName.TryGetValue(name, out var hit))
            throw new InvalidDataException($"{Folder}: missing tensor '{name}'");
        if (!hit.Entry.Shape.SequenceEqual(expectedShape))
            throw new InvalidDataException(
                $"{hit.File.Path}: tensor '{name}' has shape [{string.Join(", ", hit.Entry.Shape)}], expected [{string.Join(", ", expectedShape)}]");
        if (hit.Entry.Dtype is not ("F32" or "F16" or "BF16"))
            throw new NotSupportedException($"{hit.File.Path}: tensor '{name}' has dtype {hit.Entry.Dtype}; weights must be F32, F16 or BF16");
        return hit.File.Read(hit.Entry);
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
