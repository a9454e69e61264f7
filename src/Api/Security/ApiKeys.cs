using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ActorQuery.Api.Security;

/// <summary>
/// One accepted key, held only as the SHA-256 of its UTF-8 bytes. <see cref="Label"/> names it in logs, limits and
/// refusals: the label given in a key file, else the first 8 hex digits of the hash (never the key itself).
/// </summary>
public sealed record ApiKey(byte[] Hash, string Label)
{
    /// <summary>The hash in hex: what the per-key limits are kept under (two keys may share a label).</summary>
    public string Id { get; } = Convert.ToHexStringLower(Hash);

    /// <summary>The key a request was admitted with; null where none was needed.</summary>
    public static ApiKey? Of(HttpContext context) => context.Items.TryGetValue(typeof(ApiKey), out var k) ? k as ApiKey : null;

    public static ApiKey FromPlain(string key)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        return new ApiKey(hash, Convert.ToHexStringLower(hash)[..8]);
    }
}

/// <summary>
/// A set of keys and the check of a presented one: the presented key is hashed, and its hash compared with every stored
/// hash with <see cref="CryptographicOperations.FixedTimeEquals"/>, so that neither the time of one comparison nor how
/// many comparisons ran tells an attacker how close a guess was or which key matched.
/// </summary>
public sealed class ApiKeySet(IReadOnlyList<ApiKey> keys)
{
    public static readonly ApiKeySet Empty = new([]);

    public IReadOnlyList<ApiKey> Keys { get; } = keys;
    public bool IsEmpty => Keys.Count == 0;

    /// <summary>The key <paramref name="presented"/> is, or null.</summary>
    public ApiKey? Match(string presented)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        ApiKey? found = null;
        foreach (var key in Keys)
            if (CryptographicOperations.FixedTimeEquals(hash, key.Hash)) found ??= key;
        return found;
    }

    /// <summary>
    /// Plain keys (from the command line or the configuration) and the lines of a hash file: one SHA-256 hex hash a line
    /// (as <c>sha256sum</c> prints it), optionally followed by a label; blank lines and lines starting with '#' are skipped.
    /// Throws <see cref="FormatException"/> naming the file and line of a line that is not a hash.
    /// </summary>
    public static ApiKeySet From(IEnumerable<string> plainKeys, string? hashFile)
    {
        var keys = plainKeys.Select(ApiKey.FromPlain).ToList();
        if (!string.IsNullOrEmpty(hashFile)) keys.AddRange(ReadHashFile(hashFile));
        return new ApiKeySet(keys);
    }

    public static IReadOnlyList<ApiKey> ReadHashFile(string path)
    {
        var keys = new List<ApiKey>();
        int number = 0;
        foreach (var raw in File.ReadLines(path))
        {
            number++;
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var parts = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            string hex = parts[0];
            if (hex.Length != 64 || !hex.All(char.IsAsciiHexDigit))
                throw new FormatException($"'{path}' line {number.ToString(CultureInfo.InvariantCulture)} is not a SHA-256 hex hash (64 hex digits; make one with: printf %s \"$KEY\" | sha256sum)");
            // sha256sum prints "HASH  -" for standard input: that '-' is no label.
            string? label = parts.Length > 1 && parts[1] != "-" ? parts[1] : null;
            keys.Add(new ApiKey(Convert.FromHexString(hex), label ?? hex[..8].ToLowerInvariant()));
        }
        return keys;
    }
}
