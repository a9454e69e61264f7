using ActorQuery.Actors.Workers;
using ActorQuery.Api;
using ActorQuery.Contracts;
using ActorQuery.Inference.Engine;
using ActorQuery.Tokenization;

namespace ActorQuery.Host.Serve;

/// <summary>One model of the pool as the Host knows it: what the API needs (tokenizer, name, context) and what its
/// worker processes are started with (folder, explicit KV pool, the share of the budget they plan inside).</summary>
/// <param name="Loads">This node loads it (<c>--serves</c>); otherwise it only routes its queries to nodes that do.</param>
/// <param name="Dtype">Its --dtype (its own, or the node's).</param>
/// <param name="Workers">Its workers per worker process (its own, or the node's --workers).</param>
internal sealed record PooledModel(IServedModel Served, string Folder, long KvBytes, ModelPoolEntry Entry, bool Loads, string Dtype, int Workers);

/// <summary>
/// The model pool's catalogue, read and checked at start (exit code 2 with the setting at fault): <c>--model NAME=DIR</c>
/// entries and <c>--models-dir</c>'s subfolders, unique names, each folder with its config.json and tokenizer (loaded now:
/// the API tokenizes for every model, loaded or not), the default, keep-alives and pins. Each model's reservation is worked
/// out from config.json alone, the way the plan checks a single model before loading:
/// workers × (weights + KV pool + <see cref="ActivationAllowanceBytes"/>) + <see cref="ProcessOverheadBytes"/>.
/// </summary>
internal static class ModelPoolCatalogue
{
    /// <summary>A worker process's own memory besides its models: the .NET runtime, libtorch and its allocator (about 300 MiB
    /// measured for the 0.5B shape on the CPU), with room to spare.</summary>
    public const long ProcessOverheadBytes = 384L << 20;

    /// <summary>Each worker's activations (its measured peak was 48 MiB for the 0.5B shape at max batch 8); the worker process
    /// measures them at load and refuses a share that cannot hold them, which fails that load with the reason.</summary>
    public const long ActivationAllowanceBytes = 128L << 20;

    /// <summary>A pooled model's KV pool when --kv-cache-size is auto: this much, or less where max-batch whole contexts need less.</summary>
    public const long DefaultKvBytes = 1L << 30;

    public static IReadOnlyList<PooledModel> Build(ServeOptions o)
    {
        var entries = new List<(string Name, string Folder, string Setting)>();
        foreach (var item in o.Models)
        {
            int eq = item.IndexOf('=');
            string folder = (eq < 0 ? item : item[(eq + 1)..]).Trim();
            string name = eq < 0 ? ServedModels.NameOf(folder) : item[..eq].Trim();
            if (name.Length == 0) throw new OptionsException($"{ServeOptions.Section}:Models '{item}': the name before '=' is empty");
            entries.Add((name, folder, "Models"));
        }
        if (o.ModelsDir.Length > 0)
            foreach (var dir in Directory.GetDirectories(o.ModelsDir).Order(StringComparer.Ordinal))
                if (File.Exists(Path.Combine(dir, "config.json")))
                    entries.Add((ServedModels.NameOf(dir), dir, "ModelsDir"));
        if (entries.Count == 0)
            throw new OptionsException($"{ServeOptions.Section}:ModelsDir '{o.ModelsDir}' has no model folder (a subfolder with config.json)");
        var duplicate = entries.GroupBy(e => e.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new OptionsException($"{ServeOptions.Section}:Models: the name '{duplicate.Key}' is given {duplicate.Count()} times ({string.Join(", ", duplicate.Select(d => d.Folder))}); name them NAME=DIR");

        var names = entries.Select(e => e.Name).ToList();
        string Known(string name, string setting) =>
            names.FirstOrDefault(n => string.Equals(n, name.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? throw new OptionsException($"{ServeOptions.Section}:{setting} '{name}' is not a model of the pool ({string.Join(", ", names)})");
        var pins = o.Pin.Select(p => Known(p, "Pin")).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var serves = o.Serves.Select(p => Known(p, "Serves")).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var notServed = pins.FirstOrDefault(p => serves.Count > 0 && !serves.Contains(p));
        if (notServed is not null) throw new OptionsException($"{ServeOptions.Section}:Pin '{notServed}' is not among the models this node loads (Serves)");
        TimeSpan? keepAll = ServeOptions.DefaultKeepAlive;
        var keep = new Dictionary<string, TimeSpan?>(StringComparer.OrdinalIgnoreCase);
        foreach (var item in o.KeepAlive)
        {
            int eq = item.IndexOf('=');
            var span = KeepAliveDuration.Parse(eq < 0 ? item : item[(eq + 1)..]);
            TimeSpan? value = span == Timeout.InfiniteTimeSpan ? null : span;
            if (eq < 0) keepAll = value;
            else keep[Known(item[..eq], "KeepAlive")] = value;
        }
        string defaultName = o.DefaultModel.Length > 0 ? Known(o.DefaultModel, "DefaultModel") : names[0];
        foreach (var item in o.ModelOptions) Known(item[..item.IndexOf(':')], "ModelOptions");

        var models = new List<PooledModel>();
        foreach (var (name, folder, setting) in entries)
        {
            HfTokenizer tokenizer;
            try { tokenizer = HfTokenizer.FromPath(folder); }
            catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or System.Text.Json.JsonException or UnauthorizedAccessException)
            {
                throw new OptionsException($"{ServeOptions.Section}:{setting} model '{name}' ({folder}): {e.Message}");
            }
            var served = ServedModels.FromFolder(folder, tokenizer, name);
            string dtype = o.ModelOption(name, "dtype") ?? o.Dtype;
            int ownWorkers = o.ModelOption(name, "workers") is { } w ? int.Parse(w, System.Globalization.CultureInfo.InvariantCulture) : o.WorkersPerNode;
            long? ownKv = o.ModelOption(name, "kv-cache-size") switch
            {
                null => o.KvCacheBytes,
                var k when k.Equals("auto", StringComparison.OrdinalIgnoreCase) => null,
                var k => ByteSize.Parse(k),
            };
            var footprint = EnginePlanner.Footprint(new EngineOptions { ModelPath = folder, Dtype = dtype, Device = o.Device });
            long kv = ownKv ?? Math.Min(DefaultKvBytes,
                MemoryPlanner.MaximumKvBytes(footprint.KvBytesPerToken, footprint.ContextLength, o.MaxBatch, new EngineOptions { ModelPath = "" }.KvBlockSize));
            kv = Math.Max(kv, MemoryPlanner.MinimumKvBytes(footprint.KvBytesPerToken, footprint.ContextLength));
            int workers = Math.Max(1, ownWorkers);
            long perWorker = footprint.WeightBytes + kv + ActivationAllowanceBytes;
            long reservation = workers * perWorker + ProcessOverheadBytes;
            string terms = (workers > 1 ? $"{workers} workers x (" : "")
                           + $"weights {MemorySize.Format(footprint.WeightBytes)} ({footprint.WeightDtype}) + KV {MemorySize.Format(kv)} + activations {MemorySize.Format(ActivationAllowanceBytes)}"
                           + (workers > 1 ? ")" : "") + $" + process {MemorySize.Format(ProcessOverheadBytes)}";
            bool pinned = pins.Contains(name);
            var keepAlive = keep.TryGetValue(name, out var ka) ? ka : keepAll;
            var entry = new ModelPoolEntry(name, Path.GetFullPath(folder), reservation, terms, pinned, keepAlive);
            bool loads = (serves.Count == 0 || serves.Contains(name)) && ownWorkers > 0;
            if (pinned && !loads) throw new OptionsException($"{ServeOptions.Section}:Pin '{name}' is a model this node does not load (Serves, or its workers 0)");
            models.Add(new PooledModel(served, folder, kv, entry, loads, dtype, workers));
        }
        // The default model first: requests that name none get it, and the API lists it first.
        return models.OrderBy(m => m.Served.Name == defaultName ? 0 : 1).ToList();
    }
}
