using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Checkpoint;

/// <summary>Writes tensors as a .safetensors file (8-byte header length, JSON header, raw little-endian data).</summary>
public static class SafetensorsWriter
{
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is not null) header["__metadata__"] = metadata;
        long offset = 0;
        var ordered = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        foreach (var (name, t) in ordered)
        {
            long n = t.NumberOfElements * t.ElementSize;
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = Name(t.dtype),
                ["shape"] = t.shape,
                ["data_offsets"] = new[] { offset, offset + n },
            };
            offset += n;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int pad = (8 - json.Length % 8) % 8; // data starts 8-byte aligned, as the reference writer does
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((long)(json.Length + pad)));
        f.Write(json);
        for (int i = 0; i < pad; i++) f.WriteByte((byte)' ');
        foreach (var (_, t) in ordered)
        {
            using var c = t.cpu().contiguous();
            f.Write(c.bytes);
        }
    }

    private static string Name(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float16 => "F16",
        ScalarType.Int64 => "I64",
        _ => throw new NotSupportedException($"cannot write dtype {t} to safetensors"),
    };
}
