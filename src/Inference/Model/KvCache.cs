using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// One sequence's keys and values for every layer, allocated once for the tokens the sequence was promised
/// (prompt + max new tokens), so a step never reallocates. Owned by the engine, not by the weights.
/// </summary>
public sealed class KvCache : IDisposable
{
    /// <summary>[layers, kv_heads, capacity, head_dim]</summary>
    public Tensor Keys { get; }
    /// <summary>[layers, kv_heads, capacity, head_dim]</summary>
    public Tensor Values { get; }
    public int Capacity { get; }
    /// <summary>Tokens whose keys and values are stored.</summary>
    public int Length { get; internal set; }
    public long ByteSize { get; }

    public KvCache(DecoderWeights w, int capacity)
    {
        var c = w.Config;
        Capacity = capacity;
        long[] shape = [c.NumHiddenLayers, c.NumKeyValueHeads, capacity, c.HeadDim];
        Keys = empty(shape, w.Dtype, w.Device).DetachFromDisposeScope();
        try { Values = empty(shape, w.Dtype, w.Device).DetachFromDisposeScope(); }
        catch { Keys.Dispose(); throw; }
        ByteSize = BytesPerToken(c, w.Dtype) * capacity;
    }

    public static long BytesPerToken(Checkpoint.ModelConfig c, ScalarType dtype) =>
        2L * c.NumHiddenLayers * c.NumKeyValueHeads * c.HeadDim * DeviceAndDtype.ElementSize(dtype);

    public void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
    }
}
