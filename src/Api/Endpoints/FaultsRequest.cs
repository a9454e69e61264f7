using System.Globalization;
using System.Text.Json;
using ActorQuery.Api.Dtos;
using ActorQuery.Api.Errors;
using ActorQuery.Api.Generation;
using ActorQuery.Contracts;

namespace ActorQuery.Api.Endpoints;

/// <summary>
/// The body of POST /admin/faults, read field by field: unlike a query's body, an unknown field here is a 400 that names
/// it, since a misspelt fault ("step_delay": 50) would otherwise arm nothing and look armed.
/// </summary>
internal static class FaultsRequest
{
    public const int MaxStepDelayMs = 60_000;

    private static readonly string[] Fields = ["leak_bytes_per_step", "step_delay_ms", "oom_every_nth_step", "crash_every_nth_step", "hang_at_step"];

    public static async Task<FaultsBody> ReadAsync(HttpContext context, ApiOptions options)
    {
        var fields = await RequestReader.ReadAsync<Dictionary<string, JsonElement>>(context, options);
        foreach (var name in fields.Keys)
            if (!Fields.Contains(name, StringComparer.Ordinal))
                throw new ApiException(400, name, $"{name}: unknown fault (known: {string.Join(", ", Fields)})", "invalid_value");
        return new FaultsBody(
            Leak(fields),
            Count(fields, "step_delay_ms", MaxStepDelayMs),
            Count(fields, "oom_every_nth_step", int.MaxValue),
            Count(fields, "crash_every_nth_step", int.MaxValue),
            Count(fields, "hang_at_step", int.MaxValue));
    }

    /// <summary>Bytes, or a size as the settings write it ("64MiB").</summary>
    private static long Leak(Dictionary<string, JsonElement> fields)
    {
        const string name = "leak_bytes_per_step";
        if (!fields.TryGetValue(name, out var v)) return 0;
        long bytes;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n)) bytes = n;
        else if (v.ValueKind == JsonValueKind.String)
        {
            try { bytes = ByteSize.Parse(v.GetString()!); }
            catch (FormatException e) { throw ApiException.BadRequest(name, e.Message); }
        }
        else throw ApiException.BadRequest(name, "must be a whole number of bytes or a size such as \"64MiB\"");
        if (bytes is < 0 or > FaultOptions.MaxLeakBytesPerStep)
            throw ApiException.BadRequest(name, $"must be in [0, {ByteSize.Format(FaultOptions.MaxLeakBytesPerStep)}], got {bytes.ToString(CultureInfo.InvariantCulture)}");
        return bytes;
    }

    private static int Count(Dictionary<string, JsonElement> fields, string name, int max)
    {
        if (!fields.TryGetValue(name, out var v)) return 0;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long n))
            throw ApiException.BadRequest(name, "must be a whole number (0: off)");
        if (n < 0 || n > max) throw ApiException.BadRequest(name, $"must be in [0, {max.ToString(CultureInfo.InvariantCulture)}], got {n.ToString(CultureInfo.InvariantCulture)}");
        return (int)n;
    }
}
