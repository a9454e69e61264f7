namespace ActorQuery.Api.Dtos;

public sealed record HealthResponse(
    string Status, bool Ready, string? Node, string Model, bool Draining, bool Paused,
    int InFlight, int Queued, int MaxInFlight, int MaxQueue, IReadOnlyList<WorkerHealth> Workers, string? Error = null);

public sealed record WorkerHealth(
    string Worker, string Node, string State, string? Model, int Running, int Queued, int KvFreeTokens, int KvCapacityTokens,
    int Restarts, int OomCount, DateTimeOffset? LastOom, bool Degraded, string? DegradedReason, string? Error);

public sealed record MemoryResponse(string Node, MemoryReport? Memory, IReadOnlyList<WorkerMemory> Workers, CacheReport Cache);

public sealed record MemoryReport(
    long ResidentBytes, long ManagedBytes, long TensorBytes, long? DeviceBytes, long LimitBytes,
    double CleanupMark, double PauseMark, long CleanupMarkBytes, long PauseMarkBytes,
    long Cleanups, long Pauses, bool Paused, DateTimeOffset At);

public sealed record WorkerMemory(
    string Worker, string Node, string State, int KvFreeTokens, int KvCapacityTokens, int OomCount, DateTimeOffset? LastOom,
    bool Degraded, string? DegradedReason);

public sealed record CacheReport(int Entries, long Bytes, long Hits, long Misses);

public sealed record IndexResponse(string Name, string Model, IReadOnlyDictionary<string, string> Endpoints);
