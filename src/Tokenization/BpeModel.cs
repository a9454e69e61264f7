using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;

namespace ActorQuery.Tokenization;

/// <summary>
/// Byte-level BPE for one pre-tokenized word, with Hugging Face's semantics: the word's UTF-8 bytes start as
/// single-byte tokens and the adjacent pair with the lowest merge rank is merged (leftmost first) until no pair
/// has a merge; with <c>ignore_merges</c> a word that is itself in the vocabulary is taken whole.
/// Written by hand: Microsoft.ML.Tokenizers' BpeTokenizer (and its CodeGen tokenizer) give the same ids but
/// encode long CJK words at 0.3-0.4 MB/s on this machine, below the 1 MB/s the server needs; this keeps the
/// pair ranks in an array and updates only the neighbours of each merge.
/// </summary>
internal sealed class BpeModel
{
    private readonly int[] _byteIds = new int[256];
    // (left id, right id) → (rank << 32) | merged id.
    private readonly Dictionary<long, long> _merges;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocab;
    private readonly bool _ignoreMerges;
    // Words recur (" the", " memory"): their ids are kept, up to a bound, as Hugging Face's BPE cache does.
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private int _cacheCount;
    // Long words (a run of Chinese characters is one word) rarely recur: caching them would only churn memory.
    private const int CacheCapacity = 50_000, CachedWordLength = 12;

    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, bool ignoreMerges)
    {
        _ignoreMerges = ignoreMerges;
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _vocab = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        for (int b = 0; b < 256; b++)
        {
            var token = ByteLevel.Encode((byte)b);
            _byteIds[b] = vocab.TryGetValue(token, out var id) ? id
                : throw new InvalidDataException($"tokenizer.json: the vocabulary has no token for byte 0x{b:X2} ('{token}'), so it is not byte-level BPE");
        }
        _merges = new Dictionary<long, long>(merges.Count, PairComparer.Instance);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocab.TryGetValue(left, out var l) || !vocab.TryGetValue(right, out var r) || !vocab.TryGetValue(left + right, out var merged))
                throw new InvalidDataException($"tokenizer.json: merge #{rank} '{left} {right}' uses a token missing from the vocabulary");
            _merges.TryAdd(Key(l, r), ((long)rank << 32) | (uint)merged);
        }
    }

    /// <summary>long.GetHashCode folds the two ids with XOR, which collides badly for (left, right) pairs of
    /// small ids (measured: encoding 20x slower); a multiplicative mix spreads them.</summary>
    private sealed class PairComparer : IEqualityComparer<long>
    {
        public static readonly PairComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long key) => (int)((ulong)(key * -7046029254386353131L) >> 32);
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    private int Rank(int left, int right) => _merges.TryGetValue(Key(left, right), out var v) ? (int)(v >> 32) : int.MaxValue;

    public void EncodeWord(ReadOnlySpan<char> word, List<int> ids)
    {
        if (word.IsEmpty) return;
        if (word.Length > CachedWordLength)
        {
            EncodeUncached(word, ids);
            return;
        }
        if (_cacheLookup.TryGetValue(word, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        int start = ids.Count;
        EncodeUncached(word, ids);
        if (Interlocked.Increment(ref _cacheCount) > CacheCapacity)
        {
            _cache.Clear();
            Interlocked.Exchange(ref _cacheCount, 0);
        }
        _cache.TryAdd(word.ToString(), ids.GetRange(start, ids.Count - start).ToArray());
    }

    [SkipLocalsInit] // the scratch buffers below are written before they are read
    private void EncodeUncached(ReadOnlySpan<char> word, List<int> ids)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(word.Length);
        byte[]? rentedBytes = null;
        Span<byte> bytes = maxBytes <= 512 ? stackalloc byte[512] : (rentedBytes = ArrayPool<byte>.Shared.Rent(maxBytes));
        int n = Encoding.UTF8.GetBytes(word, bytes);
        int[]? rented = null;
        try
        {
            if (_ignoreMerges && WholeWord(bytes[..n]) is { } whole)
            {
                ids.Add(whole);
                return;
            }
            if (n == 1)
            {
                ids.Add(_byteIds[bytes[0]]);
                return;
            }
            Span<int> work = 2 * n <= 1024 ? stackalloc int[1024] : (rented = ArrayPool<int>.Shared.Rent(2 * n));
            var symbols = work[..n];
            var ranks = work.Slice(n, n - 1); // ranks[i]: the merge rank of symbols[i], symbols[i + 1]
            for (int i = 0; i < n; i++) symbols[i] = _byteIds[bytes[i]];
            for (int i = 0; i < n - 1; i++) ranks[i] = Rank(symbols[i], symbols[i + 1]);

            int count = n;
            while (count > 1)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i < count - 1; i++)
                {
                    if (ranks[i] < bestRank) { bestRank = ranks[i]; best = i; }
                }
                if (best < 0) break;
                symbols[best] = (int)_merges[Key(symbols[best], symbols[best + 1])];
                // Drop symbols[best + 1] and the rank of the pair it started.
                symbols[(best + 2)..count].CopyTo(symbols[(best + 1)..]);
                if (best + 2 < count) ranks[(best + 2)..(count - 1)].CopyTo(ranks[(best + 1)..]);
                count--;
                if (best < count - 1) ranks[best] = Rank(symbols[best], symbols[best + 1]);
                if (best > 0) ranks[best - 1] = Rank(symbols[best - 1], symbols[best]);
            }
            foreach (var s in symbols[..count]) ids.Add(s);
        }
        finally
        {
            if (rented is not null) ArrayPool<int>.Shared.Return(rented);
            if (rentedBytes is not null) ArrayPool<byte>.Shared.Return(rentedBytes);
        }
    }

    [SkipLocalsInit]
    private int? WholeWord(ReadOnlySpan<byte> bytes)
    {
        char[]? rented = null;
        Span<char> chars = bytes.Length <= 256 ? stackalloc char[256] : (rented = ArrayPool<char>.Shared.Rent(bytes.Length));
        try
        {
            for (int i = 0; i < bytes.Length; i++) chars[i] = ByteLevel.Char(bytes[i]);
            return _vocab.TryGetValue(chars[..bytes.Length], out var id) ? id : null;
        }
        finally
        {
            if (rented is not null) ArrayPool<char>.Shared.Return(rented);
        }
    }
}
