using Akka.Actor;
using Akka.TestKit;
using ActorQuery.Contracts;
using ActorQuery.Actors.Routing;
using ActorQuery.Inference.Engine;
using Xunit.Abstractions;
using ActorQuery.Actors.Tests.Support;

namespace ActorQuery.Actors.Tests;

/// <summary>The router against TestProbe workers (they report whatever load a spec needs), in virtual time.</summary>
public sealed class QueryRouterSpecs(ITestOutputHelper output) : ActorSpec(VirtualTime, output)
{
    private TestScheduler Clock => (TestScheduler)Sys.Scheduler;

    private IActorRef StartRouter(RouterOptions? options = null, CacheOptions? cache = null) =>
        Sys.ActorOf(QueryRouter.Props("node-a", options ?? new RouterOptions(), cache ?? new CacheOptions()));

    private static WorkerStatus Status(string name, WorkerState state = WorkerState.Ready, int running = 0, int queued = 0,
        int free = 1000, int capacity = 1000) =>
        new() { Worker = name, Node = "node-a", State = state, Model = "fake-model", Running = running, Queued = queued,
                KvFreeTokens = free, KvCapacityTokens = capacity };

    private TestProbe AddWorker(IActorRef router, WorkerStatus status)
    {
        var worker = CreateTestProbe();
        router.Tell(new RegisterWorker(worker.Ref));
        worker.ExpectMsg<SubscribeWorkerStatus>();
        router.Tell(status, worker.Ref);
        return worker;
    }

    private static QueryProgress Token(long ticket, string id, int token) => new(ticket, new TokensGenerated(id, "x", new[] { token }));

    private static QueryProgress Done(long ticket, string id, int tokens = 1) =>
        new(ticket, new QueryCompleted(id, FinishReason.Length, 3, tokens, false, "w"));

    [Fact]
    public void Should_refuse_with_retry_after_when_in_flight_and_queue_are_full()
    {
        var router = StartRouter(new RouterOptions { MaxInFlight = 1, MaxQueue = 1, QueueFullRetryAfter = TimeSpan.FromSeconds(3) });
        var worker = AddWorker(router, Status("w1"));
        var client = CreateTestProbe();

        router.Tell(new SubmitQuery(Greedy("a"), client.Ref));
        router.Tell(new SubmitQuery(Greedy("b"), client.Ref));
        router.Tell(new SubmitQuery(Greedy("c"), client.Ref));

        var refused = client.ExpectMsg<QueryRefused>();
        Assert.Equal(("c", RefusalReason.QueueFull, TimeSpan.FromSeconds(3)), (refused.QueryId, refused.Reason, refused.RetryAfter));
        Assert.Equal("a", worker.ExpectMsg<RunQuery>().Request.QueryId);
        worker.ExpectNoMsg(TimeSpan.FromMilliseconds(50)); // b waits in the queue
        var status = RouterStatusOf(router);
        Assert.Equal((1, 1), (status.InFlight, status.Queued));
    }

    [Fact]
    public void Should_time_out_a_query_at_its_deadline_cancel_its_work_and_drop_late_tokens()
    {
        var router = StartRouter();
        var worker = AddWorker(router, Status("w1"));
        var client = CreateTestProbe();

        router.Tell(new SubmitQuery(Greedy("a") with { Timeout = TimeSpan.FromSeconds(2) }, client.Ref));
        var run = worker.ExpectMsg<RunQuery>();
        router.Tell(Token(run.Ticket, "a", 42), worker.Ref);
        client.ExpectMsg<TokensGenerated>();

        Clock.Advance(TimeSpan.FromMilliseconds(1999));
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        Clock.Advance(TimeSpan.FromMilliseconds(1));

        Assert.Equal(TimeSpan.FromSeconds(2), client.ExpectMsg<QueryTimedOut>().Deadline);
        Assert.Equal(run.Ticket, worker.ExpectMsg<CancelRun>().Ticket);
        router.Tell(Token(run.Ticket, "a", 43), worker.Ref);
        router.Tell(Done(run.Ticket, "a"), worker.Ref);
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // exactly one terminal event
    }

    [Fact]
    public void Should_time_out_a_query_still_waiting_in_the_queue()
    {
        var router = StartRouter(new RouterOptions { MaxInFlight = 1, DefaultTimeout = TimeSpan.FromSeconds(5) });
        var worker = AddWorker(router, Status("w1"));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a"), client.Ref));
        router.Tell(new SubmitQuery(Greedy("b"), client.Ref));
        worker.ExpectMsg<RunQuery>();

        Clock.Advance(TimeSpan.FromSeconds(5));

        var ended = new[] { client.ExpectMsg<QueryTimedOut>(), client.ExpectMsg<QueryTimedOut>() };
        Assert.Equal(new[] { "a", "b" }, ended.Select(e => e.QueryId).Order());
        Assert.Single(worker.ReceiveWhile(TimeSpan.FromMilliseconds(100), m => m as CancelRun)); // b never ran
    }

    [Fact]
    public void Should_free_the_slot_when_a_query_is_cancelled()
    {
        var router = StartRouter(new RouterOptions { MaxInFlight = 1, MaxQueue = 1 });
        var worker = AddWorker(router, Status("w1"));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a"), client.Ref));
        router.Tell(new SubmitQuery(Greedy("b"), client.Ref));
        var runA = worker.ExpectMsg<RunQuery>();

        router.Tell(new CancelQuery("a"));

        Assert.Equal("a", client.ExpectMsg<QueryCancelled>().QueryId);
        Assert.Equal(runA.Ticket, worker.ExpectMsg<CancelRun>().Ticket);
        Assert.Equal("b", worker.ExpectMsg<RunQuery>().Request.QueryId); // the freed slot goes to the queue
        router.Tell(Done(runA.Ticket, "a"), worker.Ref);
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
    }

    [Fact]
    public void Should_route_to_the_least_loaded_ready_worker()
    {
        var router = StartRouter();
        var busy = AddWorker(router, Status("w1", running: 3, queued: 2));
        var idle = AddWorker(router, Status("w2", running: 1));
        var loading = AddWorker(router, Status("w3", WorkerState.Loading, free: 0, capacity: 0));
        var client = CreateTestProbe();

        router.Tell(new SubmitQuery(Greedy("a"), client.Ref));
        Assert.Equal("a", idle.ExpectMsg<RunQuery>().Request.QueryId);
        busy.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        loading.ExpectNoMsg(TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public void Should_send_queries_with_one_affinity_key_to_the_worker_of_the_first_while_it_has_room()
    {
        var router = StartRouter();
        var w1 = AddWorker(router, Status("w1"));
        var w2 = AddWorker(router, Status("w2"));
        var client = CreateTestProbe();

        router.Tell(new SubmitQuery(Greedy("a", 4, 1, 2) with { AffinityKey = "req-1/0" }, client.Ref));
        AwaitCondition(() => w1.HasMessages || w2.HasMessages);
        var (first, other) = w1.HasMessages ? (w1, w2) : (w2, w1);
        var runA = first.ExpectMsg<RunQuery>();
        // The first worker is now the busier one: a query without the key goes to the other, one with it stays.
        router.Tell(Status(first == w1 ? "w1" : "w2", running: 5), first.Ref);
        router.Tell(new SubmitQuery(Greedy("c", 4, 3, 4), client.Ref));
        Assert.Equal("c", other.ExpectMsg<RunQuery>().Request.QueryId);
        router.Tell(new SubmitQuery(Greedy("b", 4, 1, 2, 9) with { AffinityKey = "req-1/0" }, client.Ref));
        Assert.Equal("b", first.ExpectMsg<RunQuery>().Request.QueryId);
        other.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        // Once its queries ended the key is forgotten: a new one goes to the least-loaded worker.
        router.Tell(Done(runA.Ticket, "a"), first.Ref);
        client.ExpectMsg<QueryCompleted>();
        router.Tell(Status(other == w1 ? "w1" : "w2", running: 0), other.Ref);
        router.Tell(new SubmitQuery(Greedy("d", 4, 7, 7) with { AffinityKey = "req-2/0" }, client.Ref));
        Assert.Equal("d", other.ExpectMsg<RunQuery>().Request.QueryId);
    }

    [Fact]
    public void Should_hold_a_query_until_its_kv_need_fits_what_a_worker_reports_free_and_refuse_one_that_never_fits()
    {
        var router = StartRouter();
        var worker = AddWorker(router, Status("w1", running: 2, free: 50, capacity: 200));
        var client = CreateTestProbe();

        router.Tell(new SubmitQuery(Greedy("big", 300), client.Ref));
        var tooLarge = client.ExpectMsg<QueryRefused>();
        Assert.Equal(RefusalReason.TooLarge, tooLarge.Reason);
        Assert.Contains("needs 303 KV-cache tokens", tooLarge.Message);

        router.Tell(new SubmitQuery(Greedy("fits-later", 77), client.Ref)); // needs 80 > 50 free
        worker.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        router.Tell(Status("w1", running: 1, free: 120, capacity: 200), worker.Ref);
        Assert.Equal("fits-later", worker.ExpectMsg<RunQuery>().Request.QueryId);
    }

    [Fact]
    public void Should_refuse_with_memory_pressure_while_paused_and_admit_again_after_resume()
    {
        var router = StartRouter(new RouterOptions { MemoryPressureRetryAfter = TimeSpan.FromSeconds(7) });
        var worker = AddWorker(router, Status("w1"));
        var client = CreateTestProbe();

        router.Tell(new PauseAdmission("memory at 75% of the limit"));
        router.Tell(new SubmitQuery(Greedy("a"), client.Ref));
        var refused = client.ExpectMsg<QueryRefused>();
        Assert.Equal((RefusalReason.MemoryPressure, TimeSpan.FromSeconds(7)), (refused.Reason, refused.RetryAfter));
        Assert.Contains("75%", refused.Message);
        Assert.True(RouterStatusOf(router).Paused);

        router.Tell(ResumeAdmission.Instance);
        router.Tell(new SubmitQuery(Greedy("b"), client.Ref));
        Assert.Equal("b", worker.ExpectMsg<RunQuery>().Request.QueryId);
    }

    [Fact]
    public void Should_wait_for_a_loading_worker_and_refuse_no_model_ready_at_the_deadline()
    {
        var router = StartRouter(new RouterOptions { NoModelRetryAfter = TimeSpan.FromSeconds(9) });
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("none"), client.Ref));
        Assert.Equal(RefusalReason.NoModelReady, client.ExpectMsg<QueryRefused>().Reason); // no worker at all: at once

        var worker = AddWorker(router, Status("w1", WorkerState.Loading, free: 0, capacity: 0));
        router.Tell(new SubmitQuery(Greedy("a") with { Timeout = TimeSpan.FromSeconds(3) }, client.Ref));
        router.Tell(new SubmitQuery(Greedy("b") with { Timeout = TimeSpan.FromSeconds(30) }, client.Ref));
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        Clock.Advance(TimeSpan.FromSeconds(3));
        var refused = client.ExpectMsg<QueryRefused>();
        Assert.Equal(("a", RefusalReason.NoModelReady, TimeSpan.FromSeconds(9)), (refused.QueryId, refused.Reason, refused.RetryAfter));

        router.Tell(Status("w1"), worker.Ref); // the model is ready: b runs
        Assert.Equal("b", worker.ExpectMsg<RunQuery>().Request.QueryId);
    }

    [Fact]
    public void Should_refuse_waiting_queries_at_once_when_every_worker_failed()
    {
        var router = StartRouter();
        var worker = AddWorker(router, Status("w1", WorkerState.Loading, free: 0, capacity: 0));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a"), client.Ref));

        router.Tell(Status("w1", WorkerState.Failed) with { Error = "model failed to load: no config.json" }, worker.Ref);

        var refused = client.ExpectMsg<QueryRefused>();
        Assert.Equal(RefusalReason.NoModelReady, refused.Reason);
        Assert.Contains("no config.json", refused.Message);
    }

    [Fact]
    public void Should_retry_once_on_another_worker_when_a_worker_gives_a_query_back_before_its_first_token()
    {
        var router = StartRouter();
        var w1 = AddWorker(router, Status("w1"));
        var w2 = AddWorker(router, Status("w2", running: 1));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a"), client.Ref));
        var first = w1.ExpectMsg<RunQuery>();

        router.Tell(new QueryReturned(first.Ticket, "model ran out of memory", 0), w1.Ref);
        var second = w2.ExpectMsg<RunQuery>();
        Assert.NotEqual(first.Ticket, second.Ticket);
        router.Tell(Token(first.Ticket, "a", 1), w1.Ref); // a straggler of the first attempt is dropped
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        router.Tell(new QueryReturned(second.Ticket, "model ran out of memory", 0), w2.Ref);
        var failed = client.ExpectMsg<QueryFailed>();
        Assert.Contains("out of memory", failed.Reason);
        Assert.Contains("already retried", failed.Reason);
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
    }

    private static QueryProgress Text(long ticket, string id, int token, string text) => new(ticket, new TokensGenerated(id, text, new[] { token }));

    [Fact]
    public void Should_resume_a_streamed_query_on_another_worker_from_the_tokens_and_text_the_client_already_has()
    {
        var router = StartRouter();
        var w1 = AddWorker(router, Status("w1"));
        var w2 = AddWorker(router, Status("w2", running: 1));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a", 6) with { StopStrings = ["zz"] }, client.Ref));
        var first = w1.ExpectMsg<RunQuery>();
        Assert.Empty(first.Request.GeneratedTokenIds);
        router.Tell(Text(first.Ticket, "a", 5, "ab"), w1.Ref);
        router.Tell(Text(first.Ticket, "a", 6, ""), w1.Ref);   // its worker held back a 'z' that may start the stop string
        Assert.Equal("ab", client.ExpectMsg<TokensGenerated>().Text);
        client.ExpectMsg<TokensGenerated>();

        router.Tell(new QueryReturned(first.Ticket, "model ran out of memory", 2), w1.Ref);

        var second = w2.ExpectMsg<RunQuery>();
        Assert.Equal(new[] { 5, 6 }, second.Request.GeneratedTokenIds);
        Assert.Equal("ab", second.Request.GeneratedText);
        Assert.Equal((first.Request.PromptTokenIds, first.Request.Sampling, first.Request.StopStrings),
            (second.Request.PromptTokenIds, second.Request.Sampling, second.Request.StopStrings));
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));   // a pause, not an error
        router.Tell(Text(first.Ticket, "a", 9, "late"), w1.Ref); // a straggler of the lost attempt is dropped
        router.Tell(Text(second.Ticket, "a", 7, "zc"), w2.Ref);
        router.Tell(Done(second.Ticket, "a", 3), w2.Ref);

        var rest = client.ExpectMsg<TokensGenerated>();
        Assert.Equal(new[] { 7 }, rest.TokenIds);
        Assert.Equal("zc", rest.Text);
        client.ExpectMsg<QueryCompleted>();
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        var counters = RouterStatusOf(router).Counters!;
        Assert.Equal((1, 0, 0, 1), (counters.Resumed, counters.Retried, counters.Failed, counters.Completed));
    }

    [Fact]
    public void Should_resume_a_query_whose_worker_stopped_after_tokens()
    {
        var router = StartRouter();
        var w1 = AddWorker(router, Status("w1"));
        var w2 = AddWorker(router, Status("w2", running: 1));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a", 6), client.Ref));
        var first = w1.ExpectMsg<RunQuery>();
        router.Tell(Text(first.Ticket, "a", 5, "a"), w1.Ref);
        client.ExpectMsg<TokensGenerated>();

        Sys.Stop(w1.Ref);   // the router sees Terminated, as when a worker or its node is gone

        var second = w2.ExpectMsg<RunQuery>();
        Assert.Equal(new[] { 5 }, second.Request.GeneratedTokenIds);
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
    }

    [Fact]
    public void Should_fail_a_query_resumed_more_than_max_resumes_times_with_the_reason()
    {
        var router = StartRouter(new RouterOptions { MaxResumes = 2 });
        var worker = AddWorker(router, Status("w1"));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a", 8), client.Ref));
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var run = worker.ExpectMsg<RunQuery>();
            Assert.Equal(attempt, run.Request.GeneratedTokenIds.Count);
            router.Tell(Token(run.Ticket, "a", 5 + attempt), worker.Ref);
            Assert.Equal(new[] { 5 + attempt }, client.ExpectMsg<TokensGenerated>().TokenIds);
            router.Tell(new QueryReturned(run.Ticket, "model ran out of memory", attempt + 1), worker.Ref);
        }

        Assert.Equal("resumed 2 times; its worker failed again: model ran out of memory", client.ExpectMsg<QueryFailed>().Reason);
        worker.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        var counters = RouterStatusOf(router).Counters!;
        Assert.Equal((2, 1), (counters.Resumed, counters.Failed));
    }

    [Fact]
    public void Should_resume_a_buffered_query_and_give_the_client_the_whole_answer_once_at_the_end()
    {
        var router = StartRouter();
        var w1 = AddWorker(router, Status("w1"));
        var w2 = AddWorker(router, Status("w2", running: 1));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a") with { Buffered = true }, client.Ref));
        var first = w1.ExpectMsg<RunQuery>();
        router.Tell(Token(first.Ticket, "a", 5), w1.Ref);
        router.Tell(Token(first.Ticket, "a", 6), w1.Ref);
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50)); // held back: a non-streamed client reads at the end

        router.Tell(new QueryReturned(first.Ticket, "model ran out of memory", 2), w1.Ref);
        var second = w2.ExpectMsg<RunQuery>();
        Assert.Equal(new[] { 5, 6 }, second.Request.GeneratedTokenIds);
        router.Tell(Token(second.Ticket, "a", 7), w2.Ref);
        router.Tell(Done(second.Ticket, "a", 3), w2.Ref);

        Assert.Equal(new[] { 5, 6, 7 }, Enumerable.Range(0, 3).SelectMany(_ => client.ExpectMsg<TokensGenerated>().TokenIds));
        client.ExpectMsg<QueryCompleted>();
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
    }

    [Fact]
    public void Should_refuse_invalid_requests_naming_the_field()
    {
        var router = StartRouter();
        AddWorker(router, Status("w1"));
        var client = CreateTestProbe();

        router.Tell(new SubmitQuery(Greedy("a") with { Sampling = new SamplingParams { Temperature = -1 } }, client.Ref));
        var bad = client.ExpectMsg<QueryRefused>();
        Assert.Equal((RefusalReason.InvalidRequest, "temperature: must be a finite number >= 0"), (bad.Reason, bad.Message));

        router.Tell(new SubmitQuery(Greedy("b") with { PromptTokenIds = Array.Empty<int>() }, client.Ref));
        Assert.StartsWith("prompt:", client.ExpectMsg<QueryRefused>().Message);
    }

    [Fact]
    public void Should_refuse_new_queries_while_draining_and_report_drained_when_the_last_one_ends()
    {
        var router = StartRouter();
        var worker = AddWorker(router, Status("w1"));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a"), client.Ref));
        var run = worker.ExpectMsg<RunQuery>();

        router.Tell(StartDraining.Instance, TestActor);
        router.Tell(new SubmitQuery(Greedy("b"), client.Ref));
        Assert.Equal(RefusalReason.ShuttingDown, client.ExpectMsg<QueryRefused>().Reason);
        ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        router.Tell(Done(run.Ticket, "a"), worker.Ref);
        client.ExpectMsg<QueryCompleted>();
        ExpectMsg<Drained>();
        Assert.True(RouterStatusOf(router).ShuttingDown);
    }

    [Fact]
    public void Should_end_every_live_query_with_one_failure_when_the_router_stops()
    {
        var router = StartRouter(new RouterOptions { MaxInFlight = 1 });
        AddWorker(router, Status("w1"));
        var client = CreateTestProbe();
        router.Tell(new SubmitQuery(Greedy("a"), client.Ref));
        router.Tell(new SubmitQuery(Greedy("b"), client.Ref));
        Assert.Equal((1, 1), (RouterStatusOf(router).InFlight, RouterStatusOf(router).Queued));

        Sys.Stop(router);

        var ended = new[] { client.ExpectMsg<QueryFailed>(), client.ExpectMsg<QueryFailed>() };
        Assert.Equal(new[] { "a", "b" }, ended.Select(e => e.QueryId).Order());
        client.ExpectNoMsg(TimeSpan.FromMilliseconds(50));
    }

    [Fact]
    public void Should_route_a_query_that_names_its_model_only_to_workers_serving_it()
    {
        var router = StartRouter();
        var other = AddWorker(router, Status("w1") with { Model = "llama-tiny" });
        var qwen = AddWorker(router, Status("w2", running: 5) with { Model = "qwen-tiny" });
        var client = CreateTestProbe();

        router.Tell(new SubmitQuery(Greedy("a") with { Model = "Qwen-Tiny" }, client.Ref));
        Assert.Equal("a", qwen.ExpectMsg<RunQuery>().Request.QueryId); // busier, but the only one with the model
        other.ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        router.Tell(new SubmitQuery(Greedy("b") with { Model = "gpt-5" }, client.Ref));
        var refused = client.ExpectMsg<QueryRefused>();
        Assert.Equal(RefusalReason.InvalidRequest, refused.Reason);
        Assert.StartsWith("model: 'gpt-5' is not served here", refused.Message);
    }
}
