using System.Text;
using Akka.Actor;
using Akka.Serialization;
using ActorQuery.Contracts;
using ActorQuery.Tokenization.Grammar;

namespace ActorQuery.Actors.Cluster;

/// <summary>
/// The wire format of every message that crosses nodes (bound in hocon/cluster.hocon): the router ↔ worker protocol
/// (RunQuery, CancelRun, QueryProgress with its events, QueryReturned), the query events themselves, and the
/// workers' load (WorkerStatus, WorkerLoadPublished, SubscribeWorkerStatus, GetWorkerStatus), and the admin operations on
/// a node's workers (CleanupWorker, WorkerCleanedUp, ArmFaults, GetFaults, FaultsReported).
/// <para>
/// Why binary and why by hand: a streamed query sends one <see cref="QueryProgress"/> per generated token, so this is
/// the hot path of the cluster. Akka's default JSON serializer writes type names and property names for each of them
/// (a few hundred bytes and reflection per token); this format is a one- or two-letter manifest plus the fields in a
/// fixed order with variable-length integers (about 20–40 bytes for a one-token event). The messages are a dozen
/// plain records, so a hand-written BinaryWriter codec is shorter than a .proto file plus the code-generation step
/// (Grpc.Tools) it would add to every build, and it keeps the records themselves as they are.
/// </para>
/// <para>
/// Versioning: new fields go at the end of a message (an older reader ignores trailing bytes); any other change
/// needs a new manifest, since nodes of a rolling upgrade read each other's messages.
/// </para>
/// </summary>
public sealed class ActorQuerySerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    /// <summary>Akka reserves 0–100; this id is ActorQuery's, and must stay the same on every node.</summary>
    public const int Id = 7407;

    public override int Identifier => Id;

    private const string RunQueryM = "RQ", CancelRunM = "CR", ProgressM = "QP", ReturnedM = "QR",
        StatusM = "WS", PublishedM = "WP", SubscribeM = "SW", GetStatusM = "GW", DrainM = "DW",
        ModelActivityM = "MA", ModelUnavailableM = "MU", ModelCatalogM = "MC",
        CleanupM = "CU", CleanedUpM = "CD", ArmFaultsM = "AF", GetFaultsM = "GF", FaultsM = "FR",
        TokensM = "TG", CompletedM = "QC", RefusedM = "QX", FailedM = "QF", TimedOutM = "QT", CancelledM = "QK";

    public override string Manifest(object o) => o switch
    {
        RunQuery => RunQueryM,
        CancelRun => CancelRunM,
        QueryProgress => ProgressM,
        QueryReturned => ReturnedM,
        WorkerStatus => StatusM,
        WorkerLoadPublished => PublishedM,
        SubscribeWorkerStatus => SubscribeM,
        GetWorkerStatus => GetStatusM,
        DrainWorker => DrainM,
        Workers.ModelActivity => ModelActivityM,
        Workers.ModelUnavailable => ModelUnavailableM,
        Workers.ModelCatalogPublished => ModelCatalogM,
        CleanupWorker => CleanupM,
        WorkerCleanedUp => CleanedUpM,
        ArmFaults => ArmFaultsM,
        GetFaults => GetFaultsM,
        FaultsReported => FaultsM,
        QueryEvent e => EventManifest(e),
        _ => throw new ArgumentException($"ActorQuerySerializer cannot serialize {o.GetType()}", nameof(o)),
    };

    private static string EventManifest(QueryEvent e) => e switch
    {
        TokensGenerated => TokensM,
        QueryCompleted => CompletedM,
        QueryRefused => RefusedM,
        QueryFailed => FailedM,
        QueryTimedOut => TimedOutM,
        QueryCancelled => CancelledM,
        _ => throw new ArgumentException($"ActorQuerySerializer cannot serialize {e.GetType()}", nameof(e)),
    };

    public override byte[] ToBinary(object obj)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            switch (obj)
            {
                case RunQuery m: w.Write7BitEncodedInt64(m.Ticket); WriteRequest(w, m.Request); break;
                case CancelRun m: w.Write7BitEncodedInt64(m.Ticket); break;
                case QueryProgress m: w.Write7BitEncodedInt64(m.Ticket); w.Write(EventManifest(m.Event)); WriteEvent(w, m.Event); break;
                case QueryReturned m: w.Write7BitEncodedInt64(m.Ticket); w.Write(m.Reason); w.Write7BitEncodedInt(m.TokensSent); break;
                case WorkerStatus m: WriteStatus(w, m); break;
                case WorkerLoadPublished m: WriteRef(w, m.Worker); WriteStatus(w, m.Status); break;
                case SubscribeWorkerStatus m: WriteRef(w, m.Subscriber); break;
                case GetWorkerStatus: break;
                case DrainWorker: break;
                case Workers.ModelActivity m:
                    w.Write(m.Model); w.Write7BitEncodedInt(m.Live); WriteNullable(w, m.KeepAlive, (x, t) => x.Write(t.Ticks)); break;
                case Workers.ModelUnavailable m:
                    w.Write(m.Model); w.Write(m.Reason); WriteNullable(w, m.RetryAfter, (x, t) => x.Write(t.Ticks)); break;
                case Workers.ModelCatalogPublished m:
                    WriteRef(w, m.Pool); w.Write7BitEncodedInt(m.Models.Count); foreach (var name in m.Models) w.Write(name); break;
                case CleanupWorker: break;
                case WorkerCleanedUp m:
                    w.Write(m.Worker); w.Write(m.Node); w.Write7BitEncodedInt(m.ProcessId); w.Write(m.State);
                    w.Write7BitEncodedInt64(m.ResidentBeforeBytes); w.Write7BitEncodedInt64(m.ResidentAfterBytes);
                    w.Write7BitEncodedInt64(m.ManagedBeforeBytes); w.Write7BitEncodedInt64(m.ManagedAfterBytes);
                    break;
                case ArmFaults m: WriteFaults(w, m.Faults); break;
                case GetFaults: break;
                case FaultsReported m:
                    w.Write(m.Worker); w.Write(m.Node); w.Write7BitEncodedInt(m.ProcessId);
                    w.Write(m.Faults is not null);
                    if (m.Faults is { } f) WriteFaults(w, f);
                    w.Write7BitEncodedInt64(m.Steps); w.Write7BitEncodedInt64(m.LeakedBytes);
                    break;
                case QueryEvent e: WriteEvent(w, e); break;
                default: throw new ArgumentException($"ActorQuerySerializer cannot serialize {obj.GetType()}", nameof(obj));
            }
        }
        return stream.ToArray();
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        using var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        return manifest switch
        {
            RunQueryM => new RunQuery(r.Read7BitEncodedInt64(), ReadRequest(r)),
            CancelRunM => new CancelRun(r.Read7BitEncodedInt64()),
            ProgressM => new QueryProgress(r.Read7BitEncodedInt64(), ReadEvent(r, r.ReadString())),
            ReturnedM => new QueryReturned(r.Read7BitEncodedInt64(), r.ReadString(), r.Read7BitEncodedInt()),
            StatusM => ReadStatus(r),
            PublishedM => new WorkerLoadPublished(ReadRef(r), ReadStatus(r)),
            SubscribeM => new SubscribeWorkerStatus(ReadRef(r)),
            GetStatusM => GetWorkerStatus.Instance,
            DrainM => DrainWorker.Instance,
            ModelActivityM => new Workers.ModelActivity(r.ReadString(), r.Read7BitEncodedInt(), ReadNullable(r, x => TimeSpan.FromTicks(x.ReadInt64()))),
            ModelUnavailableM => new Workers.ModelUnavailable(r.ReadString(), r.ReadString(), ReadNullable(r, x => TimeSpan.FromTicks(x.ReadInt64()))),
            ModelCatalogM => ReadCatalog(r),
            CleanupM => CleanupWorker.Instance,
            CleanedUpM => new WorkerCleanedUp(r.ReadString(), r.ReadString(), r.Read7BitEncodedInt(), r.ReadString(),
                r.Read7BitEncodedInt64(), r.Read7BitEncodedInt64(), r.Read7BitEncodedInt64(), r.Read7BitEncodedInt64()),
            ArmFaultsM => new ArmFaults(ReadFaults(r)),
            GetFaultsM => GetFaults.Instance,
            FaultsM => new FaultsReported(r.ReadString(), r.ReadString(), r.Read7BitEncodedInt(), r.ReadBoolean() ? ReadFaults(r) : null,
                r.Read7BitEncodedInt64(), r.Read7BitEncodedInt64()),
            _ => ReadEvent(r, manifest),
        };
    }

    private Workers.ModelCatalogPublished ReadCatalog(BinaryReader r)
    {
        var pool = ReadRef(r);
        var models = new string[r.Read7BitEncodedInt()];
        for (int i = 0; i < models.Length; i++) models[i] = r.ReadString();
        return new Workers.ModelCatalogPublished(pool, models);
    }

    // ---- query request ----

    private static void WriteRequest(BinaryWriter w, QueryRequest q)
    {
        w.Write(q.QueryId);
        WriteInts(w, q.PromptTokenIds);
        WriteSampling(w, q.Sampling);
        w.Write7BitEncodedInt(q.StopStrings.Count);
        foreach (var s in q.StopStrings) w.Write(s);
        WriteNullable(w, q.Timeout, (x, t) => x.Write(t.Ticks));
        WriteNullableString(w, q.Model);
        w.Write(q.SkipSpecialTokens);
        w.Write(q.Buffered);
        WriteInts(w, q.GeneratedTokenIds);
        w.Write(q.GeneratedText);
        // The output constraint is part of the sampling, written last so that older readers ignore it.
        w.Write(q.Sampling.Constraint is not null);
        if (q.Sampling.Constraint is { } c)
        {
            w.Write((byte)c.Kind);
            w.Write(c.Source);
        }
        var bias = q.Sampling.LogitBias ?? new Dictionary<int, float>();
        w.Write7BitEncodedInt(bias.Count);
        foreach (var (id, b) in bias)
        {
            w.Write7BitEncodedInt(id);
            w.Write(b);
        }
    }

    private static QueryRequest ReadRequest(BinaryReader r)
    {
        var id = r.ReadString();
        var prompt = ReadInts(r);
        var sampling = ReadSampling(r);
        var stops = new string[r.Read7BitEncodedInt()];
        for (int i = 0; i < stops.Length; i++) stops[i] = r.ReadString();
        var request = new QueryRequest
        {
            QueryId = id,
            PromptTokenIds = prompt,
            Sampling = sampling,
            StopStrings = stops,
            Timeout = ReadNullable(r, x => TimeSpan.FromTicks(x.ReadInt64())),
            Model = ReadNullableString(r),
            SkipSpecialTokens = r.ReadBoolean(),
            Buffered = r.ReadBoolean(),
            // A resumed query's progress, at the end of the message; a writer without them sends a fresh query.
            GeneratedTokenIds = r.BaseStream.Position < r.BaseStream.Length ? ReadInts(r) : Array.Empty<int>(),
            GeneratedText = r.BaseStream.Position < r.BaseStream.Length ? r.ReadString() : "",
        };
        if (r.BaseStream.Position < r.BaseStream.Length && r.ReadBoolean())
        {
            var kind = (ConstraintKind)r.ReadByte();
            if (!Enum.IsDefined(kind)) throw new System.Runtime.Serialization.SerializationException($"ActorQuerySerializer: unknown output constraint kind {(int)kind}");
            request = request with { Sampling = sampling with { Constraint = new OutputConstraint(kind, r.ReadString()) } };
        }
        if (r.BaseStream.Position < r.BaseStream.Length && r.Read7BitEncodedInt() is > 0 and var count)
        {
            var bias = new Dictionary<int, float>(count);
            for (int i = 0; i < count; i++) bias[r.Read7BitEncodedInt()] = r.ReadSingle();
            request = request with { Sampling = request.Sampling with { LogitBias = bias } };
        }
        return request;
    }

    private static void WriteSampling(BinaryWriter w, SamplingParams s)
    {
        w.Write(s.Temperature);
        w.Write7BitEncodedInt(s.TopK);
        w.Write(s.TopP);
        w.Write(s.MinP);
        w.Write(s.RepetitionPenalty);
        w.Write(s.PresencePenalty);
        w.Write(s.FrequencyPenalty);
        WriteNullable(w, s.Seed, (x, v) => x.Write(v));
        w.Write7BitEncodedInt(s.MaxNewTokens);
        w.Write7BitEncodedInt(s.MinNewTokens);
        w.Write(s.IgnoreEos);
        WriteInts(w, s.StopTokenIds);
        w.Write(s.Logprobs);
        w.Write7BitEncodedInt(s.TopLogprobs);
    }

    private static SamplingParams ReadSampling(BinaryReader r) => new()
    {
        Temperature = r.ReadSingle(),
        TopK = r.Read7BitEncodedInt(),
        TopP = r.ReadSingle(),
        MinP = r.ReadSingle(),
        RepetitionPenalty = r.ReadSingle(),
        PresencePenalty = r.ReadSingle(),
        FrequencyPenalty = r.ReadSingle(),
        Seed = ReadNullable(r, x => x.ReadInt64()),
        MaxNewTokens = r.Read7BitEncodedInt(),
        MinNewTokens = r.Read7BitEncodedInt(),
        IgnoreEos = r.ReadBoolean(),
        StopTokenIds = ReadInts(r),
        Logprobs = r.ReadBoolean(),
        TopLogprobs = r.Read7BitEncodedInt(),
    };

    // ---- query events ----

    private static void WriteEvent(BinaryWriter w, QueryEvent e)
    {
        w.Write(e.QueryId);
        switch (e)
        {
            case TokensGenerated t:
                w.Write(t.Text);
                WriteInts(w, t.TokenIds);
                w.Write7BitEncodedInt(t.Logprobs is null ? -1 : t.Logprobs.Count);
                foreach (var lp in t.Logprobs ?? [])
                {
                    w.Write7BitEncodedInt(lp.TokenId);
                    w.Write(lp.Logprob);
                    w.Write7BitEncodedInt(lp.Top.Count);
                    foreach (var top in lp.Top) { w.Write7BitEncodedInt(top.TokenId); w.Write(top.Logprob); }
                }
                break;
            case QueryCompleted c:
                w.Write((byte)c.FinishReason);
                w.Write7BitEncodedInt(c.PromptTokens);
                w.Write7BitEncodedInt(c.CompletionTokens);
                w.Write(c.Cached);
                w.Write(c.Worker);
                w.Write7BitEncodedInt(c.CachedPromptTokens);
                break;
            case QueryRefused x:
                w.Write((byte)x.Reason);
                w.Write(x.Message);
                WriteNullable(w, x.RetryAfter, (y, t) => y.Write(t.Ticks));
                break;
            case QueryFailed f: w.Write(f.Reason); break;
            case QueryTimedOut t: w.Write(t.Deadline.Ticks); break;
            case QueryCancelled: break;
            default: throw new ArgumentException($"ActorQuerySerializer cannot serialize {e.GetType()}", nameof(e));
        }
    }

    private static QueryEvent ReadEvent(BinaryReader r, string manifest)
    {
        var id = r.ReadString();
        switch (manifest)
        {
            case TokensM:
                var text = r.ReadString();
                var ids = ReadInts(r);
                int n = r.Read7BitEncodedInt();
                TokenLogprob[]? logprobs = null;
                if (n >= 0)
                {
                    logprobs = new TokenLogprob[n];
                    for (int i = 0; i < n; i++)
                    {
                        int token = r.Read7BitEncodedInt();
                        float lp = r.ReadSingle();
                        var top = new TopLogprob[r.Read7BitEncodedInt()];
                        for (int j = 0; j < top.Length; j++) top[j] = new TopLogprob(r.Read7BitEncodedInt(), r.ReadSingle());
                        logprobs[i] = new TokenLogprob(token, lp, top);
                    }
                }
                return new TokensGenerated(id, text, ids, logprobs);
            case CompletedM:
                return new QueryCompleted(id, (FinishReason)r.ReadByte(), r.Read7BitEncodedInt(), r.Read7BitEncodedInt(), r.ReadBoolean(), r.ReadString(),
                    r.BaseStream.Position < r.BaseStream.Length ? r.Read7BitEncodedInt() : 0);
            case RefusedM:
                return new QueryRefused(id, (RefusalReason)r.ReadByte(), r.ReadString(), ReadNullable(r, x => TimeSpan.FromTicks(x.ReadInt64())));
            case FailedM: return new QueryFailed(id, r.ReadString());
            case TimedOutM: return new QueryTimedOut(id, TimeSpan.FromTicks(r.ReadInt64()));
            case CancelledM: return new QueryCancelled(id);
            default: throw new System.Runtime.Serialization.SerializationException($"ActorQuerySerializer: unknown manifest '{manifest}'");
        }
    }

    // ---- worker status ----

    private static void WriteStatus(BinaryWriter w, WorkerStatus s)
    {
        w.Write(s.Worker);
        w.Write(s.Node);
        w.Write((byte)s.State);
        WriteNullableString(w, s.Model);
        w.Write7BitEncodedInt(s.Running);
        w.Write7BitEncodedInt(s.Queued);
        w.Write7BitEncodedInt(s.KvFreeTokens);
        w.Write7BitEncodedInt(s.KvCapacityTokens);
        w.Write7BitEncodedInt(s.Restarts);
        w.Write7BitEncodedInt(s.OomCount);
        WriteNullable(w, s.LastOom, (x, t) => { x.Write(t.UtcTicks); x.Write((short)t.Offset.TotalMinutes); });
        w.Write(s.Degraded);
        WriteNullableString(w, s.DegradedReason);
        WriteNullableString(w, s.Error);
        w.Write7BitEncodedInt(s.Preemptions);
        w.Write7BitEncodedInt(s.DegradeLevel);
        w.Write7BitEncodedInt64(s.TensorBytes);
        WriteNullableString(w, s.Device);
        w.Write7BitEncodedInt(s.MaxBatch);
        w.Write7BitEncodedInt(s.Crashes);
        w.Write7BitEncodedInt(s.LoadAttempts);
        WriteNullable(w, s.Memory, (x, m) =>
        {
            x.Write7BitEncodedInt64(m.WeightBytes); x.Write7BitEncodedInt64(m.KvCacheBytes); x.Write7BitEncodedInt64(m.KvUsedBytes);
            x.Write7BitEncodedInt64(m.ActivationPeakBytes); x.Write7BitEncodedInt64(m.LoadOverheadBytes); x.Write7BitEncodedInt64(m.KvBytesPerToken);
            x.Write(m.OnDevice);
        });
        w.Write7BitEncodedInt(s.KvBlockSize);
        WriteNullableString(w, s.MemoryPressure);
    }

    // Fields in the order WriteStatus writes them.
    private static WorkerStatus ReadStatus(BinaryReader r) => new()
    {
        Worker = r.ReadString(), Node = r.ReadString(), State = (WorkerState)r.ReadByte(), Model = ReadNullableString(r),
        Running = r.Read7BitEncodedInt(), Queued = r.Read7BitEncodedInt(), KvFreeTokens = r.Read7BitEncodedInt(),
        KvCapacityTokens = r.Read7BitEncodedInt(), Restarts = r.Read7BitEncodedInt(), OomCount = r.Read7BitEncodedInt(),
        LastOom = ReadNullable(r, x =>
        {
            long ticks = x.ReadInt64();
            var offset = TimeSpan.FromMinutes(x.ReadInt16());
            return new DateTimeOffset(ticks + offset.Ticks, offset);
        }),
        Degraded = r.ReadBoolean(), DegradedReason = ReadNullableString(r), Error = ReadNullableString(r),
        Preemptions = r.Read7BitEncodedInt(), DegradeLevel = r.Read7BitEncodedInt(), TensorBytes = r.Read7BitEncodedInt64(),
        Device = ReadNullableString(r), MaxBatch = r.Read7BitEncodedInt(), Crashes = r.Read7BitEncodedInt(), LoadAttempts = r.Read7BitEncodedInt(),
        Memory = ReadNullable(r, x => new EngineMemory(x.Read7BitEncodedInt64(), x.Read7BitEncodedInt64())
        {
            KvUsedBytes = x.Read7BitEncodedInt64(), ActivationPeakBytes = x.Read7BitEncodedInt64(), LoadOverheadBytes = x.Read7BitEncodedInt64(),
            KvBytesPerToken = x.Read7BitEncodedInt64(), OnDevice = x.ReadBoolean(),
        }),
        KvBlockSize = r.Read7BitEncodedInt(), MemoryPressure = ReadNullableString(r),
    };

    // ---- faults ----

    private static void WriteFaults(BinaryWriter w, LiveFaults f)
    {
        w.Write7BitEncodedInt64(f.LeakBytesPerStep);
        w.Write7BitEncodedInt(f.StepDelayMs);
        w.Write7BitEncodedInt(f.OomEveryNthStep);
        w.Write7BitEncodedInt(f.CrashEveryNthStep);
        w.Write7BitEncodedInt(f.HangAtStep);
    }

    // Fields in the order WriteFaults writes them.
    private static LiveFaults ReadFaults(BinaryReader r) => new()
    {
        LeakBytesPerStep = r.Read7BitEncodedInt64(), StepDelayMs = r.Read7BitEncodedInt(), OomEveryNthStep = r.Read7BitEncodedInt(),
        CrashEveryNthStep = r.Read7BitEncodedInt(), HangAtStep = r.Read7BitEncodedInt(),
    };

    // ---- primitives ----

    private void WriteRef(BinaryWriter w, IActorRef actor) => w.Write(Serialization.SerializedActorPath(actor));

    private IActorRef ReadRef(BinaryReader r) => system.Provider.ResolveActorRef(r.ReadString());

    // Token ids are small non-negative numbers in practice; zig-zag keeps a negative id (never expected) representable.
    private static void WriteInts(BinaryWriter w, IReadOnlyList<int> values)
    {
        w.Write7BitEncodedInt(values.Count);
        foreach (var v in values) w.Write7BitEncodedInt((v << 1) ^ (v >> 31));
    }

    private static int[] ReadInts(BinaryReader r)
    {
        var values = new int[r.Read7BitEncodedInt()];
        for (int i = 0; i < values.Length; i++)
        {
            uint z = (uint)r.Read7BitEncodedInt();
            values[i] = (int)(z >> 1) ^ -(int)(z & 1);
        }
        return values;
    }

    private static void WriteNullableString(BinaryWriter w, string? s)
    {
        w.Write(s is not null);
        if (s is not null) w.Write(s);
    }

    private static string? ReadNullableString(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    private static void WriteNullable<T>(BinaryWriter w, T? value, Action<BinaryWriter, T> write) where T : struct
    {
        w.Write(value.HasValue);
        if (value is { } v) write(w, v);
    }

    private static T? ReadNullable<T>(BinaryReader r, Func<BinaryReader, T> read) where T : struct =>
        r.ReadBoolean() ? read(r) : null;
}
