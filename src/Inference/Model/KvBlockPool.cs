using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// The KV cache tensors of every sequence an engine runs, allocated once when the engine loads (vLLM's paged
/// layout): <see cref="KvBlockAllocator.BlockCount"/> blocks of <see cref="KvBlockAllocator.BlockSize"/> token
/// slots per layer. Which block belongs to which sequence is the <see cref="Allocator"/>'s bookkeeping; no KV
/// tensor is allocated after load.
/// </summary>
public sealed class KvBlockPool : IDisposable
{
    /// <summary>[layers, blocks * block_size, kv_heads, head_dim]: slot = block * BlockSize + offset in block.</summary>
    public Tensor Keys { get; }
    /// <summary>[layers, blocks * block_size, kv_heads, head_dim], as <see cref="Keys"/>.</summary>
    public Tensor Values { get; }
    /// <summary>The free list and block tables over this pool's blocks.</summary>
    public KvBlockAllocator Allocator { get; }
    public int BlockSize => Allocator.BlockSize;
    public int BlockCount => Allocator.BlockCount;
    /// <summary>Bytes one block holds (keys and values of every layer).</summary>
    public long BlockBytes { get; }
    public long ByteSize => BlockBytes * BlockCount;

    /// <param name="commit">Write every page now (zeros), so that the OS charges the whole pool at load and an
    /// impossible plan fails at start, not under load; otherwise the pages stay virtual until sequences fill them.</param>
    public KvBlockPool(DecoderWeights w, int blockCount, int blockSize, bool commit = false)
    {
        Allocator = new KvBlockAllocator(blockCount, blockSize);
        var c = w.Config;
        BlockBytes = BytesPerToken(c, w.Dtype) * blockSize;
        long[] shape = [c.NumHiddenLayers, (long)blockCount * blockSize, c.NumKeyValueHeads, c.HeadDim];
        // Slots are always written before they are read, so the values do not matter: zeros only to commit the pages.
        Keys = (commit ? zeros(shape, w.Dtype, w.Device) : empty(shape, w.Dtype, w.Device)).DetachFromDisposeScope();
        try { Values = (commit ? zeros(shape, w.Dtype, w.Device) : empty(shape, w.Dtype, w.Device)).DetachFromDisposeScope(); }
        catch { Keys.Dispose(); throw; }
    }

    /// <summary>As many blocks as <paramref name="budgetBytes"/> holds.</summary>
    public static KvBlockPool ForBudget(DecoderWeights w, long budgetBytes, int blockSize, bool commit = false)
    {
        if (blockSize < 1) throw new ArgumentException("must be >= 1", "kv_block_size");
        long blockBytes = BytesPerToken(w.Config, w.Dtype) * blockSize;
        return new KvBlockPool(w, (int)Math.Min(int.MaxValue / blockSize, budgetBytes / blockBytes), blockSize, commit);
    }

    public static long BytesPerToken(Checkpoint.ModelConfig c, ScalarType dtype) =>
        2L * c.NumHiddenLayers * c.NumKeyValueHeads * c.HeadDim * DeviceAndDtype.ElementSize(dtype);

    public void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
    }
}
