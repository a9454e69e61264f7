using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ActorQuery.Api.Security;

/// <summary>
/// One accepted key, held only as the SHA-256 of its UTF-8 bytes. <see cref="Label"/> names it in logs, limits and
/// refusals: the label given in a key file, else the first 8 hex digits of the hash (never the key itself).
/// </summary>
/// <param name="Limits">This key's own limits, over the settings' (null: the settings').</param>
public sealed record ApiKey(byte[] Hash, string Label, KeyLimits? Limits = null)
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

/// <summary>One key's limits from its line in a key file; null fields take the settings' value, 0 is unlimited.</summary>
public sealed record KeyLimits(int? RequestsPerMinute, int? TokensPerMinute, int? ConcurrentRequests)
{
    /// <summary>The names in a key file, the settings' flags without "key-".</summary>
    public static readonly string[] Names = ["requests-per-minute", "tokens-per-minute", "concurrent-requests"];
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
    /// (as <c>sha256sum</c> prints it), optionally followed by a label and by the key's own limits
    /// (<c>HASH billing requests-per-minute=60 tokens-per-minute=20000 concurrent-requests=4</c>); blank lines and lines
    /// starting with '#' are skipped. Throws <see cref="FormatException"/> naming the file and line of a line it cannot read.
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
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            string at = $"'{path}' line {number.ToString(CultureInfo.InvariantCulture)}";
            string hex = parts[0];
            if (hex.Length != 64 || !hex.All(char.IsAsciiHexDigit))
                throw new FormatException($"{at} is not a SHA-256 hex hash (64 hex digits; make one with: printf %s \"$KEY\" | sha256sum)");
            string? label = null;
            var limits = new Dictionary<string, int>();
            foreach (var part in parts.Skip(1))
            {
                int eq = part.IndexOf('=');
                if (eq < 0)
                {
                    // sha256sum prints "HASH  -" for standard input: that '-' is no label.
                    if (label is null && part != "-") label = part;
                    continue;
                }
                string name = part[..eq];
                if (!KeyLimits.Names.Contains(name) || !int.TryParse(part[(eq + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int value))
                    throw new FormatException($"{at}: '{part}' is not one of {string.Join(", ", KeyLimits.Names.Select(n => n + "=N"))} (N >= 0)");
                limits[name] = value;
            }
            int? Limit(string name) => limits.TryGetValue(name, out var v) ? v : null;
            var own = limits.Count == 0 ? null : new KeyLimits(Limit(KeyLimits.Names[0]), Limit(KeyLimits.Names[1]), Limit(KeyLimits.Names[2]));
            keys.Add(new ApiKey(Convert.FromHexString(hex), label ?? hex[..8].ToLowerInvariant(), own));
        }
        return keys;
    }
}
