using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ActorQuery.Contracts;

namespace ActorQuery.Actors.Routing;

/// <summary>A finished deterministic answer, replayed as one <see cref="TokensGenerated"/> and a cached <see cref="QueryCompleted"/>.</summary>
public sealed record CachedAnswer(string Text, IReadOnlyList<int> TokenIds, IReadOnlyList<TokenLogprob>? Logprobs,
    FinishReason FinishReason, int PromptTokens, int CompletionTokens, string Worker)
{
    /// <summary>Rough size in memory: UTF-16 text, 4 bytes per id, ~16 per log-probability, a fixed overhead.</summary>
    public long EstimatedBytes => 128 + Text.Length * 2L + TokenIds.Count * 4L
                                  + (Logprobs?.Sum(l => 16L + l.Top.Count * 8L) ?? 0);
}

/// <summary>
/// LRU of finished answers to deterministic queries (greedy or seeded), bounded by entries and bytes. Owned by
/// the QueryRouter (one per node), so it needs no locking. Hand-written because it is a dozen lines over a
/// LinkedList + Dictionary and Microsoft.Extensions.Caching.Memory has no LRU order.
/// </summary>
public sealed class QueryCache(CacheOptions options)
{
    private readonly Dictionary<string, LinkedListNode<(string Key, CachedAnswer Answer, long Bytes)>> _index = new();
    private readonly LinkedList<(string Key, CachedAnswer Answer, long Bytes)> _lru = new();
    private long _bytes, _hits, _misses;

    public CacheStats Stats => new(_index.Count, _bytes, _hits, _misses);

    /// <summary>Only deterministic queries have a key; others are never cached.</summary>
    public static string? KeyOf(QueryRequest request)
    {
        if (!request.Sampling.IsDeterministic) return null;
        var json = JsonSerializer.Serialize(new
        {
            model = request.Model ?? "",
            prompt = request.PromptTokenIds,
            sampling = request.Sampling,
            stop = request.StopStrings,
            skip = request.SkipSpecialTokens,
        });
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(json)));
    }

    public bool TryGet(string key, out CachedAnswer answer)
    {
        if (options.Enabled && _index.TryGetValue(key, out var node))
        {
            _lru.Remove(node);
            _lru.AddFirst(node);
            _hits++;
            answer = node.Value.Answer;
            return true;
        }
        _misses++;
        answer = null!;
        return false;
    }

    /// <summary>Drops every entry (memory is short); the hit and miss counts stay.</summary>
    public void Clear()
    {
        _index.Clear();
        _lru.Clear();
        _bytes = 0;
    }

    public void Put(string key, CachedAnswer answer)
    {
        if (!options.Enabled || options.MaxEntries == 0) return;
        long bytes = answer.EstimatedBytes + key.Length * 2L;
        if (bytes > options.MaxBytes) return;
        if (_index.Remove(key, out var old))
        {
            _lru.Remove(old);
            _bytes -= old.Value.Bytes;
        }
        _index[key] = _lru.AddFirst((key, answer, bytes));
        _bytes += bytes;
        while (_index.Count > options.MaxEntries || _bytes > options.MaxBytes)
        {
            var last = _lru.Last!;
            _lru.RemoveLast();
            _index.Remove(last.Value.Key);
            _bytes -= last.Value.Bytes;
        }
    }
}
