using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace ActorQuery.Inference.Model;

/// <summary>
/// Which blocks of the KV pool are free and which sequences hold which (vLLM's paged layout), as plain block
/// numbers: a free list, a reference count per block and per-sequence <see cref="KvBlockTable"/>s. It holds no
/// tensors, so the scheduler owns it and is tested without TorchSharp; the tensors those numbers index are the
/// <see cref="KvBlockPool"/>'s.
/// <para>
/// Prefix caching (vLLM's automatic prefix caching): a full block whose keys and values are written can be
/// registered under <see cref="PrefixHash"/> of every token up to and including it (<see cref="Cache"/>). A sequence
/// whose prompt starts with the same tokens takes those blocks instead of computing them (<see cref="TakeCached"/>);
/// a block is shared by counting references, and a sequence only ever writes past its shared blocks, so shared blocks
/// are never written. A cached block that no sequence holds stays in the pool, least recently released first in line
/// to be evicted when the free list is empty; a block some sequence holds is never evicted.
/// </para>
/// </summary>
public sealed class KvBlockAllocator
{
    // LIFO free list of blocks with no cached content: a freed block is the next one handed out, so steady-state
    // serving keeps touching the same pages (on the CPU the untouched rest of the pool is never made resident).
    private readonly Stack<int> _free;
    private readonly int[] _refs;
    // Cached blocks: hash → block, and each block's hash while it is the cached copy of those tokens.
    private readonly Dictionary<UInt128, int> _cached = new();
    private readonly UInt128?[] _hashOf;
    // Cached blocks no sequence holds, least recently released first: evicted from the front.
    private readonly LinkedList<int> _evictable = new();
    private readonly LinkedListNode<int>?[] _evictableNode;

    public int BlockSize { get; }
    public int BlockCount { get; }
    /// <summary>Blocks a sequence can be given now: never-cached free blocks plus cached blocks no sequence holds
    /// (evicted on demand).</summary>
    public int FreeBlocks => _free.Count + _evictable.Count;
    /// <summary>Blocks held by at least one sequence.</summary>
    public int UsedBlocks => BlockCount - FreeBlocks;
    /// <summary>Blocks registered in the prefix cache, held or not.</summary>
    public int CachedBlocks => _cached.Count;
    /// <summary>Cached blocks that no sequence holds: the ones eviction may take.</summary>
    public int EvictableBlocks => _evictable.Count;
    /// <summary>Cached blocks evicted to make room since the pool was made.</summary>
    public long EvictionsTotal { get; private set; }
    public int CapacityTokens => BlockCount * BlockSize;

    public KvBlockAllocator(int blockCount, int blockSize)
    {
        if (blockSize < 1) throw new ArgumentException("must be >= 1", "kv_block_size");
        if (blockCount < 0) throw new ArgumentException("must be >= 0", nameof(blockCount));
        BlockSize = blockSize;
        BlockCount = blockCount;
        _free = new Stack<int>(Enumerable.Range(0, blockCount).Reverse());
        _refs = new int[blockCount];
        _hashOf = new UInt128?[blockCount];
        _evictableNode = new LinkedListNode<int>?[blockCount];
    }

    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>How many references sequences hold on <paramref name="block"/> (0: free or evictable).</summary>
    public int ReferencesTo(int block) => _refs[block];

    /// <summary>Grows <paramref name="table"/> until it holds <paramref name="tokens"/> tokens, from the free list and
    /// then by evicting the least recently released cached blocks; false (and no change) when even that is too short.</summary>
    public bool TryGrow(KvBlockTable table, int tokens)
    {
        if (table.Allocator != this) throw new InvalidOperationException("the block table belongs to another pool");
        int more = BlocksFor(tokens) - table.Blocks.Count;
        if (more > FreeBlocks) return false;
        for (int i = 0; i < more; i++)
        {
            int b = _free.Count > 0 ? _free.Pop() : Evict();
            _refs[b] = 1;
            table.Blocks.Add(b);
        }
        return true;
    }

    private int Evict()
    {
        int b = _evictable.First!.Value;
        _evictable.RemoveFirst();
        _evictableNode[b] = null;
        _cached.Remove(_hashOf[b]!.Value);
        _hashOf[b] = null;
        EvictionsTotal++;
        return b;
    }

    /// <summary>Drops <paramref name="table"/>'s reference to each of its blocks and empties it. A block no sequence
    /// holds any more goes back to the free list, or, if it is cached, to the end of the eviction line; a table's
    /// blocks join that line last block first, so a prefix outlives the blocks that continue it.</summary>
    public void Release(KvBlockTable table)
    {
        if (table.Allocator != this) throw new InvalidOperationException("the block table belongs to another pool");
        for (int i = table.Blocks.Count - 1; i >= 0; i--)
        {
            int b = table.Blocks[i];
            if (_refs[b] <= 0) throw new InvalidOperationException($"KV block {b} freed twice");
            if (--_refs[b] > 0) continue;
            if (_hashOf[b] is null) _free.Push(b);
            else _evictableNode[b] = _evictable.AddLast(b);
        }
        table.Blocks.Clear();
        table.Length = 0;
    }

    /// <summary>Registers block <paramref name="index"/> of <paramref name="table"/> (full, its keys and values written)
    /// as the cached copy of the tokens <paramref name="hash"/> stands for. If another block already is, this one stays
    /// private to its sequences and is freed with them.</summary>
    public void Cache(KvBlockTable table, int index, UInt128 hash)
    {
        if (table.Allocator != this) throw new InvalidOperationException("the block table belongs to another pool");
        if ((index + 1) * BlockSize > table.Length) throw new InvalidOperationException($"block {index} of the table is not full yet");
        int b = table.Blocks[index];
        if (_hashOf[b] is not null || !_cached.TryAdd(hash, b)) return;
        _hashOf[b] = hash;
    }

    /// <summary>How many of <paramref name="hashes"/> (a prompt's block hashes, in order) are cached from the first on.</summary>
    public int CachedPrefixBlocks(IReadOnlyList<UInt128> hashes)
    {
        int n = 0;
        while (n < hashes.Count && _cached.ContainsKey(hashes[n])) n++;
        return n;
    }

    /// <summary>Gives an empty <paramref name="table"/> the cached blocks of the longest cached prefix of
    /// <paramref name="hashes"/> (one more reference on each; an evictable one leaves the eviction line) and marks their
    /// tokens written. Returns how many blocks it took.</summary>
    public int TakeCached(KvBlockTable table, IReadOnlyList<UInt128> hashes)
    {
        if (table.Allocator != this) throw new InvalidOperationException("the block table belongs to another pool");
        if (table.Blocks.Count > 0) throw new InvalidOperationException("cached blocks start a block table; this one holds blocks already");
        int n = 0;
        for (; n < hashes.Count && _cached.TryGetValue(hashes[n], out int b); n++)
        {
            if (_refs[b]++ == 0)
            {
                _evictable.Remove(_evictableNode[b]!);
                _evictableNode[b] = null;
            }
            table.Blocks.Add(b);
        }
        table.Length = n * BlockSize;
        return n;
    }
}

/// <summary>The key of a full block in the prefix cache: a hash of every token from position 0 through the block's
/// last, chained block by block as vLLM's (hash(parent's hash, this block's tokens)), so equal keys mean equal prefixes.
/// SHA-256 (its first 128 bits), so that two different prefixes sharing a key, which would hand a sequence another's
/// keys and values, is as unlikely as a cryptographic collision; it costs about a microsecond a block.</summary>
public static class PrefixHash
{
    public static UInt128 Of(UInt128 parent, ReadOnlySpan<int> tokens)
    {
        Span<byte> input = tokens.Length <= 1024 ? stackalloc byte[16 + tokens.Length * 4] : new byte[16 + tokens.Length * 4];
        BinaryPrimitives.WriteUInt128LittleEndian(input, parent);
        for (int i = 0; i < tokens.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(input[(16 + i * 4)..], tokens[i]);
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(input, digest);
        return BinaryPrimitives.ReadUInt128LittleEndian(digest);
    }
}

/// <summary>One sequence's blocks in a <see cref="KvBlockAllocator"/>: position p lives in slot
/// Blocks[p / BlockSize] * BlockSize + p % BlockSize of the pool's tensors.</summary>
public sealed class KvBlockTable(KvBlockAllocator allocator)
{
    public KvBlockAllocator Allocator { get; } = allocator;
    public List<int> Blocks { get; } = new();
    /// <summary>Tokens whose keys and values are stored (positions 0..Length-1); the forward pass that stores them
    /// advances it, and blocks taken from the prefix cache count as stored.</summary>
    public int Length { get; internal set; }
    public int Capacity => Blocks.Count * Allocator.BlockSize;

    public long Slot(int position) => Slot(CollectionsMarshal.AsSpan(Blocks), Allocator.BlockSize, position);

    /// <summary>The pool slot of <paramref name="position"/> for a sequence holding <paramref name="blocks"/>.</summary>
    public static long Slot(ReadOnlySpan<int> blocks, int blockSize, int position) =>
        (long)blocks[position / blockSize] * blockSize + position % blockSize;
}
