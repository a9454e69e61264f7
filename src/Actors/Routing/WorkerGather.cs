using Akka.Actor;

namespace ActorQuery.Actors.Routing;

/// <summary>
/// Sends one message to a set of workers and gathers one answer from each, for at most a timeout, then tells the
/// gathered answers (and the names of the workers that stayed silent) to whoever asked, and stops. The router starts one
/// per admin request, so that a slow worker (one in the middle of a long step, or in a process that is going away)
/// never holds up the router itself. Answers are matched by the worker name they carry, not by their sender: a worker
/// may answer from its model actor, and a worker in another process answers through remoting.
/// </summary>
internal sealed class WorkerGather<TAnswer> : ReceiveActor, IWithTimers where TAnswer : class
{
    private sealed record TimedOut : INoSerializationVerificationNeeded
    {
        public static readonly TimedOut Instance = new();
    }

    private readonly IActorRef _replyTo;
    private readonly HashSet<string> _waiting;
    private readonly List<TAnswer> _answers = new();
    private readonly Func<IReadOnlyList<TAnswer>, IReadOnlyList<string>, object> _reply;
    private readonly IReadOnlyDictionary<IActorRef, string> _workers;
    private readonly object _message;
    private readonly TimeSpan _timeout;

    public ITimerScheduler Timers { get; set; } = null!;

    public WorkerGather(IReadOnlyDictionary<IActorRef, string> workers, object message, TimeSpan timeout, IActorRef replyTo,
        Func<TAnswer, string> nameOf, Func<IReadOnlyList<TAnswer>, IReadOnlyList<string>, object> reply)
    {
        _replyTo = replyTo;
        _reply = reply;
        _workers = workers;
        _message = message;
        _timeout = timeout;
        _waiting = new HashSet<string>(workers.Values, StringComparer.Ordinal);

        Receive<TAnswer>(a =>
        {
            if (!_waiting.Remove(nameOf(a))) return;
            _answers.Add(a);
            if (_waiting.Count == 0) Finish();
        });
        Receive<TimedOut>(_ => Finish());
    }

    protected override void PreStart()
    {
        if (_waiting.Count == 0) { Finish(); return; }
        foreach (var worker in _workers.Keys) worker.Tell(_message, Self);
        Timers.StartSingleTimer("timeout", TimedOut.Instance, _timeout);
    }

    public static Props Props(IReadOnlyDictionary<IActorRef, string> workers, object message, TimeSpan timeout, IActorRef replyTo,
        Func<TAnswer, string> nameOf, Func<IReadOnlyList<TAnswer>, IReadOnlyList<string>, object> reply) =>
        Akka.Actor.Props.Create(() => new WorkerGather<TAnswer>(workers, message, timeout, replyTo, nameOf, reply));

    private void Finish()
    {
        _replyTo.Tell(_reply(_answers, _waiting.Order(StringComparer.Ordinal).ToList()));
        Context.Stop(Self);
    }
}
