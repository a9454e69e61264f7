using System.Runtime.InteropServices;

namespace ActorQuery.Inference.Model;

/// <summary>
/// Which blocks of the KV pool are free and which sequence holds which (vLLM's paged layout), as plain block
/// numbers: a free list and per-sequence <see cref="KvBlockTable"/>s. Adding, growing and ending a sequence move
/// block numbers between lists. It holds no tensors, so the scheduler owns it and is tested without TorchSharp;
/// the tensors those numbers index are the <see cref="KvBlockPool"/>'s.
/// </summary>
public sealed class KvBlockAllocator
{
    // LIFO free list: a freed block is the next one handed out, so steady-state serving keeps touching the
    // same pages (on the CPU the untouched rest of the pool is never made resident).
    private readonly Stack<int> _free;
    private readonly bool[] _inUse;

    public int BlockSize { get; }
    public int BlockCount { get; }
    public int FreeBlocks => _free.Count;
    public int UsedBlocks => BlockCount - _free.Count;
    public int CapacityTokens => BlockCount * BlockSize;

    public KvBlockAllocator(int blockCount, int blockSize)
    {
        if (blockSize < 1) throw new ArgumentException("must be >= 1", "kv_block_size");
        if (blockCount < 0) throw new ArgumentException("must be >= 0", nameof(blockCount));
        BlockSize = blockSize;
        BlockCount = blockCount;
        _free = new Stack<int>(Enumerable.Range(0, blockCount).Reverse());
        _inUse = new bool[blockCount];
    }

    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>Grows <paramref name="table"/> until it holds <paramref name="tokens"/> tokens; false (and no
    /// change) when the free list is too short.</summary>
    public bool TryGrow(KvBlockTable table, int tokens)
    {
        if (table.Allocator != this) throw new InvalidOperationException("the block table belongs to another pool");
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
        if (table.Allocator != this) throw new InvalidOperationException("the block table belongs to another pool");
        foreach (var b in table.Blocks)
        {
            if (!_inUse[b]) throw new InvalidOperationException($"KV block {b} freed twice");
            _inUse[b] = false;
            _free.Push(b);
        }
        table.Blocks.Clear();
        table.Length = 0;
    }
}

/// <summary>One sequence's blocks in a <see cref="KvBlockAllocator"/>: position p lives in slot
/// Blocks[p / BlockSize] * BlockSize + p % BlockSize of the pool's tensors.</summary>
public sealed class KvBlockTable(KvBlockAllocator allocator)
{
    public KvBlockAllocator Allocator { get; } = allocator;
    public List<int> Blocks { get; } = new();
    /// <summary>Tokens whose keys and values are stored (positions 0..Length-1); the forward pass that stores them
    /// advances it.</summary>
    public int Length { get; internal set; }
    public int Capacity => Blocks.Count * Allocator.BlockSize;

    public long Slot(int position) => Slot(CollectionsMarshal.AsSpan(Blocks), Allocator.BlockSize, position);

    /// <summary>The pool slot of <paramref name="position"/> for a sequence holding <paramref name="blocks"/>.</summary>
    public static long Slot(ReadOnlySpan<int> blocks, int blockSize, int position) =>
        (long)blocks[position / blockSize] * blockSize + position % blockSize;
}
