using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Checkpoint;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string Dtype, long[] Shape, long Begin, long End);

/// <summary>
/// A memory-mapped .safetensors file. The header is parsed once; each tensor is copied straight from the
/// mapping into a libtorch tensor, so the file is never held twice in managed memory.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly long _length;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }

    public SafetensorsFile(string path)
    {
        Path = path;
        _length = new FileInfo(path).Length;
        if (_length < 8) throw new InvalidDataException($"{path}: truncated safetensors file ({_length} bytes, no header)");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
        try
        {
            long headerLen = *(long*)_base;
            if (headerLen <= 0 || 8 + headerLen > _length)
                throw new InvalidDataException($"{path}: truncated or corrupt safetensors header (declared {headerLen} bytes, file {_length})");
            _dataStart = 8 + headerLen;
            var json = Encoding.UTF8.GetString(new ReadOnlySpan<byte>(_base + 8, checked((int)headerLen)));
            Entries = ParseHeader(json, path, _length - _dataStart);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private static Dictionary<string, SafetensorsEntry> ParseHeader(string json, string path, long dataLength)
    {
        var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        using var doc = JsonDocument.Parse(json);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__") continue;
            var e = prop.Value;
            var dtype = e.GetProperty("dtype").GetString() ?? "";
            var shape = e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            var offs = e.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            if (offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0])
                throw new InvalidDataException($"{path}: tensor '{prop.Name}' has invalid data_offsets");
            if (offs[1] > dataLength)
                throw new InvalidDataException($"{path}: tensor '{prop.Name}' ends at byte {offs[1]} but the file holds {dataLength} data bytes (truncated file)");
            long elems = shape.Aggregate(1L, (a, b) => a * b);
            int size = ElementSize(dtype);
            if (size > 0 && elems * size != offs[1] - offs[0])
                throw new InvalidDataException($"{path}: tensor '{prop.Name}' of shape [{string.Join(", ", shape)}] {dtype} needs {elems * size} bytes but has {offs[1] - offs[0]}");
            entries[prop.Name] = new SafetensorsEntry(prop.Name, dtype, shape, offs[0], offs[1]);
        }
        return entries;
    }

    private static int ElementSize(string dtype) => dtype switch
    {
        "F32" or "I32" => 4,
        "F16" or "BF16" or "I16" => 2,
        "F64" or "I64" => 8,
        "U8" or "I8" or "BOOL" => 1,
        _ => 0,
    };

    /// <summary>Reads one tensor exactly as stored (F32, F16, BF16) into a new CPU tensor.</summary>
    public Tensor Read(SafetensorsEntry e)
    {
        ScalarType type = e.Dtype switch
        {
            "F32" => ScalarType.Float32,
            "I64" => ScalarType.Int64,
            "F16" => ScalarType.Float16,
            "BF16" => ScalarType.BFloat16,
            _ => throw new NotSupportedException($"{Path}: tensor '{e.Name}' has dtype {e.Dtype}; readable dtypes are F32, F16, BF16 (and I64)"),
        };
        var t = empty(e.Shape, type, CPU);
        long n = e.End - e.Begin;
        var src = new ReadOnlySpan<byte>(_base + _dataStart + e.Begin, checked((int)n));
        src.CopyTo(t.bytes);
        return t;
    }

    public void Dispose()
    {
        if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
