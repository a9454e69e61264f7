using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace ActorQuery.Inference.Model;

/// <summary>
/// The KV cache of every sequence an engine runs, allocated once when the engine loads (vLLM's paged
/// layout): fixed-size blocks of <see cref="BlockSize"/> token slots, a free list, and per-sequence
/// <see cref="KvBlockTable"/>s that say which blocks hold which positions. Admitting, growing and ending a
/// sequence move block numbers between lists; no KV tensor is allocated after load.
/// </summary>
public sealed class KvBlockPool : IDisposable
{
    // LIFO free list: a freed block is the next one handed out, so steady-state serving keeps touching the
    // same pages (on the CPU the untouched rest of the pool is never made resident).
    private readonly Stack<int> _free;
    private readonly bool[] _inUse;

    /// <summary>[layers, blocks * block_size, kv_heads, head_dim]: slot = block * BlockSize + offset in block.</summary>
    public Tensor Keys { get; }
    /// <summary>[layers, blocks * block_size, kv_heads, head_dim], as <see cref="Keys"/>.</summary>
    public Tensor Values { get; }
    public int BlockSize { get; }
    public int BlockCount { get; }
    /// <summary>Bytes one block holds (keys and values of every layer).</summary>
    public long BlockBytes { get; }
    public long ByteSize => BlockBytes * BlockCount;
    public int FreeBlocks => _free.Count;
    public int UsedBlocks => BlockCount - _free.Count;

    public KvBlockPool(DecoderWeights w, int blockCount, int blockSize)
    {
        if (blockSize < 1) throw new ArgumentException("must be >= 1", "kv_block_size");
        if (blockCount < 0) throw new ArgumentException("must be >= 0", nameof(blockCount));
        var c = w.Config;
        BlockSize = blockSize;
        BlockCount = blockCount;
        BlockBytes = BytesPerToken(c, w.Dtype) * blockSize;
        long[] shape = [c.NumHiddenLayers, (long)blockCount * blockSize, c.NumKeyValueHeads, c.HeadDim];
        // empty, not zeros: slots are always written before they are read, and untouched pages stay virtual.
        Keys = empty(shape, w.Dtype, w.Device).DetachFromDisposeScope();
        try { Values = empty(shape, w.Dtype, w.Device).DetachFromDisposeScope(); }
        catch { Keys.Dispose(); throw; }
        _free = new Stack<int>(Enumerable.Range(0, blockCount).Reverse());
        _inUse = new bool[blockCount];
    }

    /// <summary>As many blocks as <paramref name="budgetBytes"/> holds.</summary>
    public static KvBlockPool ForBudget(DecoderWeights w, long budgetBytes, int blockSize)
    {
        if (blockSize < 1) throw new ArgumentException("must be >= 1", "kv_block_size");
        long blockBytes = BytesPerToken(w.Config, w.Dtype) * blockSize;
        return new KvBlockPool(w, (int)Math.Min(int.MaxValue / blockSize, budgetBytes / blockBytes), blockSize);
    }

    public static long BytesPerToken(Checkpoint.ModelConfig c, ScalarType dtype) =>
        2L * c.NumHiddenLayers * c.NumKeyValueHeads * c.HeadDim * DeviceAndDtype.ElementSize(dtype);

    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>Grows <paramref name="table"/> until it holds <paramref name="tokens"/> tokens; false (and no
    /// change) when the free list is too short.</summary>
    public bool TryGrow(KvBlockTable table, int tokens)
    {
        if (table.Pool != this) throw new InvalidOperationException("the block table belongs to another pool");
        int more = BlocksFor(tokens) - table.Blocks.Count;
        if (more > _free.Count) return false;
        for (int i = 0; i < more; i++)
        {
            int b = _free.Pop();
            _inUse[b] = true;
            table.Blocks.Add(b);
        }
        return true;
    }

    /// <summary>Returns every block of <paramref name="table"/> to the free list and empties it.</summary>
    public void Release(KvBlockTable table)
    {
        if (table.Pool != this) throw new InvalidOperationException("the block table belongs to another pool");
        foreach (var b in table.Blocks)
        {
            if (!_inUse[b]) throw new InvalidOperationException($"KV block {b} freed twice");
            _inUse[b] = false;
            _free.Push(b);
        }
        table.Blocks.Clear();
        table.Length = 0;
    }

    public void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
    }
}

/// <summary>One sequence's blocks in a <see cref="KvBlockPool"/>: position p lives in slot
/// Blocks[p / BlockSize] * BlockSize + p % BlockSize.</summary>
public sealed class KvBlockTable(KvBlockPool pool)
{
    public KvBlockPool Pool { get; } = pool;
    public List<int> Blocks { get; } = new();
    /// <summary>Tokens whose keys and values are stored (positions 0..Length-1).</summary>
    public int Length { get; internal set; }
    public int Capacity => Blocks.Count * Pool.BlockSize;

    public long Slot(int position) => Slot(CollectionsMarshal.AsSpan(Blocks), Pool.BlockSize, position);

    /// <summary>The pool slot of <paramref name="position"/> for a sequence holding <paramref name="blocks"/>.</summary>
    public static long Slot(ReadOnlySpan<int> blocks, int blockSize, int position) =>
        (long)blocks[position / blockSize] * blockSize + position % blockSize;
}
